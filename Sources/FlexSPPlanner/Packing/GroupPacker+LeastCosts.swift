import FlexSPCore

/// What bounds a packing from below: each sequence's least GPU-time and least time over the
/// allowed degrees. Computed once for a batch, it bounds every micro-batch of every candidate
/// split by a sum over its members (the cost model's times are not recomputed per split).
extension GroupPacker {
    struct LeastCosts: Sendable {
        /// Least `degree x time` of each sequence; infinity where no allowed degree holds it.
        let work: [Double]
        /// Least time of each sequence; infinity where no allowed degree holds it.
        let time: [Double]
        let beta1: Double
        let worldSize: Int

        /// The least makespan any packing of these members (indices into the lengths) can have:
        /// `beta1` plus the larger of their work spread over every GPU and the slowest one alone.
        ///
        /// - Complexity: O(members).
        func lowerBound(members: some Sequence<Int>) -> Double {
            var total = 0.0, longest = 0.0
            for i in members {
                total += work[i]
                longest = max(longest, time[i])
            }
            return beta1 + max(total / Double(worldSize), longest)
        }
    }

    /// The least costs of each of `lengths`.
    ///
    /// - Complexity: O(K x D).
    func leastCosts(lengths: [Int]) -> LeastCosts {
        var work = [Double](repeating: .infinity, count: lengths.count)
        var time = [Double](repeating: .infinity, count: lengths.count)
        for (i, length) in lengths.enumerated() {
            for (k, d) in degrees.enumerated() where length <= capacities[k] {
                let t = model.sequenceTime(length: length, degree: d)
                work[i] = min(work[i], t * Double(d))
                time[i] = min(time[i], t)
            }
        }
        return LeastCosts(work: work, time: time, beta1: model.beta1, worldSize: model.worldSize)
    }

    /// The least makespan any packing of these lengths can have with the allowed degrees
    /// (the bound of `LowerBound` for one micro-batch).
    func lowerBound(lengths: [Int]) -> Double { leastCosts(lengths: lengths).lowerBound(members: lengths.indices) }
}
