import FlexSPCore

/// A lower bound on the step time of every valid plan for a batch, computed from the batch
/// alone (never from a plan), so a plan's gap to it bounds how far the plan is from optimal.
///
/// Let `W` be the sum over sequences of the least GPU-time each can cost (`degree x time`,
/// minimised over the degrees that hold it), `t` the least time the longest-running sequence
/// can add to its group, and `M_min` the fewest micro-batches that hold the batch's tokens.
/// In any micro-batch with makespan `C` and groups `p`, every group has
/// `C - beta1 >= sum over its sequences of time`; multiplying by `d_p` and summing over groups
/// (whose degrees add to at most `N`) gives `N (C - beta1) >= W_mb`. Summing over the at least
/// `M_min` micro-batches:
///
///     step >= M_min * beta1 + max(W / N, t)
///
/// - Complexity: O(K log N) for K sequences.
public enum LowerBound {
    public static func stepTime(_ batch: Batch) -> Double {
        let model = batch.costModel
        var work = 0.0
        var longest = 0.0
        for length in batch.lengths {
            work += model.minimumWork(length: length)!
            longest = max(longest, model.minimumTime(length: length)!)
        }
        let microBatches = Blaster.minimumMicroBatches(totalTokens: batch.totalTokens, costModel: model)
        return Double(microBatches) * model.beta1 + max(work / Double(model.worldSize), longest)
    }
}
