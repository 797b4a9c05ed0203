import FlexSPCore

/// A lower bound on the step time of every valid plan for a batch, computed from the batch
/// alone (never from a plan), so a plan's gap to it bounds how far the plan is from optimal.
///
/// Let `W` be the sum over sequences of the least GPU-time each can cost (`degree x time`,
/// minimised over the degrees that hold it) and `M_min` the fewest micro-batches that hold the
/// batch's tokens. In any micro-batch with makespan `C`, every group `p` has
/// `C - beta1 >= sum over its sequences of time`; multiplying by `d_p` and summing over groups
/// (whose degrees add to at most `N`) gives `N (C - beta1) >= W_mb`. Summing over the at least
/// `M_min` micro-batches gives `step >= M_min beta1 + W / N`.
///
/// The longest-running sequence `L` sharpens this: whatever degree `d` it runs at, its
/// micro-batch lasts at least `beta1 + time(L, d)`, and it costs `d time(L, d)` GPU-time
/// rather than its least. So
///
///     step >= M_min beta1 + min over d holding L of max(time(L, d), (W - least(L) + d time(L, d)) / N)
///
/// - Complexity: O(K D) for K sequences and D degrees.
public enum LowerBound {
    public static func stepTime(_ batch: Batch) -> Double {
        let model = batch.costModel
        let n = Double(model.worldSize)
        var work = 0.0
        var longest = batch.lengths[0]
        var longestTime = -1.0
        for length in batch.lengths {
            work += model.minimumWork(length: length)!
            let time = model.minimumTime(length: length)!
            if time > longestTime { longestTime = time; longest = length }
        }
        let leastOfLongest = model.minimumWork(length: longest)!
        var busy = Double.infinity
        for d in model.degrees where model.fits(tokens: longest, degree: d) {
            let t = model.sequenceTime(length: longest, degree: d)
            busy = min(busy, max(t, (work - leastOfLongest + Double(d) * t) / n))
        }
        let microBatches = Blaster.minimumMicroBatches(totalTokens: batch.totalTokens, costModel: model)
        return Double(microBatches) * model.beta1 + busy
    }
}
