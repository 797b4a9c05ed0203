import FlexSPCore

/// A lower bound on the step time of every valid plan for a batch, computed from the batch
/// alone (never from a plan), so a plan's gap to it bounds how far the plan is from optimal.
///
///     let bound = LowerBound.stepTime(batch)                     // quick: O(K D)
///     let strong = LowerBound.stepTime(batch, mode: .thorough)   // LPs, see `ThoroughBound`
///
/// The quick bound. Let `W` be the sum over sequences of the least GPU-time each can cost
/// (`degree x time`, minimised over the degrees that hold it) and `Cap` the most tokens one
/// micro-batch can hold (`GroupCapacity.microBatch`). A plan with `M` micro-batches has
/// `M >= M_min = ceil(tokens / Cap)`. In any micro-batch with makespan `C`, every group `p`
/// has `C - beta1 >= sum over its sequences of time`; multiplying by `d_p` and summing over
/// groups (whose degrees add to at most `N`) gives `N (C - beta1) >= W_mb`. Summing over the
/// `M` micro-batches gives `step >= M beta1 + W / N`.
///
/// The longest-running sequence `L` sharpens this: whatever degree `d` it runs at, its
/// micro-batch lasts at least `beta1 + time(L, d)`, and it costs `d time(L, d)` GPU-time
/// rather than its least. So, for a plan with `M` micro-batches,
///
///     step >= quick(M) = M beta1 + min over d holding L of max(time(L, d), (W - least(L) + d time(L, d)) / N)
///
/// which grows with `M`, so `quick(M_min)` bounds every plan.
///
/// - Complexity: O(K D) for K sequences and D degrees, plus `GroupCapacity`'s table (at most
///   4 million cells; about 0.2 million for 512 sequences on 64 GPUs).
public enum LowerBound {
    /// A lower bound on the optimal step time of `batch`; `.thorough` is never below `.quick`.
    public static func stepTime(_ batch: Batch, mode: BoundMode = .quick) -> Double {
        switch mode {
        case .quick: quick(batch, microBatches: minimumMicroBatches(batch))
        case .thorough: ThoroughBound(batch).stepTime()
        }
    }

    /// `quick(M)` of the type's doc comment: a lower bound on every plan of exactly (or, since
    /// it grows with `M`, at least) `microBatches` micro-batches.
    static func quick(_ batch: Batch, microBatches: Int) -> Double {
        Double(microBatches) * batch.costModel.beta1 + busy(batch)
    }

    /// `quick(M) - M beta1`: the part of the quick bound that does not depend on `M`, so a
    /// caller trying many `M` (`ThoroughBound`) computes it once.
    ///
    /// - Complexity: O(K D).
    static func busy(_ batch: Batch) -> Double {
        let model = batch.costModel
        let n = Double(model.worldSize)
        var work = 0.0
        var longest = batch.lengths[0]
        var longestTime = -Double.infinity
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
        return busy
    }

    /// The fewest micro-batches any valid plan of `batch` can have: `ceil(tokens / Cap)`.
    static func minimumMicroBatches(_ batch: Batch) -> Int {
        minimumMicroBatches(batch, capacity: GroupCapacity(batch).microBatch)
    }

    static func minimumMicroBatches(_ batch: Batch, capacity: Double) -> Int {
        let tokens = batch.lengths.reduce(0.0) { $0 + Double($1) }
        return max(1, Int((tokens / capacity).rounded(.up)))
    }
}
