import FlexSPCore

/// Packs one micro-batch's sequences into sequence-parallel groups of allowed degrees so that
/// the slowest group finishes as early as possible, using at most `worldSize` GPUs.
///
/// It binary-searches the makespan `C`. For a given `C`, sequences are taken longest first;
/// each joins the open group where it leaves the least time to spare (best fit) among those
/// with room in time and memory, or else opens a group of the smallest degree that holds it
/// and finishes within `C`. The best packing seen is kept.
///
/// - Complexity: O(log(1/eps) x K x D x log G) for K sequences, D degrees and G groups, plus
///   the memory walk when best-fit candidates are full.
struct GroupPacker: Sendable {
    struct Packing: Sendable {
        /// Degree and member indices (into the packed `lengths`) of each group.
        var groups: [(degree: Int, members: [Int])]
        var makespan: Double
    }

    let model: CostModel
    /// Allowed degrees, ascending.
    let degrees: [Int]
    let capacities: [Int]

    init(model: CostModel, degrees: [Int]) {
        self.model = model
        self.degrees = degrees.sorted()
        capacities = self.degrees.map { model.tokenCapacity(degree: $0) }
    }

    /// The least makespan any packing of these lengths can have with the allowed degrees
    /// (the bound of `LowerBound` for one micro-batch).
    func lowerBound(lengths: [Int]) -> Double {
        var work = 0.0, longest = 0.0
        for length in lengths {
            var bestWork = Double.infinity, bestTime = Double.infinity
            for (k, d) in degrees.enumerated() where length <= capacities[k] {
                let t = model.sequenceTime(length: length, degree: d)
                bestWork = min(bestWork, t * Double(d))
                bestTime = min(bestTime, t)
            }
            work += bestWork
            longest = max(longest, bestTime)
        }
        return model.beta1 + max(work / Double(model.worldSize), longest)
    }

    /// Packs lengths sorted longest first; nil when no packing fits the GPUs and memory.
    func pack(lengths: [Int]) -> Packing? {
        guard !lengths.isEmpty else { return Packing(groups: [], makespan: 0) }
        let d = degrees.count
        // times[i * d + k]: time sequence i adds at degrees[k]; infinity where it does not fit.
        var times = [Double](repeating: .infinity, count: lengths.count * d)
        for (i, length) in lengths.enumerated() {
            for k in 0 ..< d where length <= capacities[k] {
                times[i * d + k] = model.sequenceTime(length: length, degree: degrees[k])
            }
        }
        var low = lowerBound(lengths: lengths)
        guard low.isFinite else { return nil }
        var best: Packing?
        var target = low
        for _ in 0 ..< 60 {
            if let found = attempt(lengths: lengths, times: times, makespan: target) {
                best = found
                break
            }
            low = target
            target *= 1.25
        }
        guard var incumbent = best else { return nil }
        var high = min(target, incumbent.makespan)
        while (high - low) > 1e-4 * high {
            let mid = (low + high) / 2
            if let found = attempt(lengths: lengths, times: times, makespan: mid) {
                if found.makespan < incumbent.makespan { incumbent = found }
                high = min(mid, found.makespan)
            } else {
                low = mid
            }
        }
        return incumbent
    }

    /// One greedy pass with every group's time capped at `makespan`.
    private func attempt(lengths: [Int], times: [Double], makespan: Double) -> Packing? {
        let d = degrees.count
        let beta1 = model.beta1
        var groupDegree: [Int] = []  // index into degrees
        var groupTime: [Double] = []
        var groupTokens: [Int] = []
        var groupMembers: [[Int]] = []
        // Per degree, open groups sorted by time ascending.
        var byDegree = [[Int]](repeating: [], count: d)
        var gpusUsed = 0
        let worldSize = model.worldSize

        for (i, length) in lengths.enumerated() {
            var chosen = -1, chosenSlack = Double.infinity, chosenK = -1
            for k in 0 ..< d {
                let t = times[i * d + k]
                if !t.isFinite { continue }
                let limit = makespan - t
                let list = byDegree[k]
                // Last position with time <= limit.
                var lo = 0, hi = list.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if groupTime[list[mid]] <= limit { lo = mid + 1 } else { hi = mid }
                }
                var pos = lo - 1
                while pos >= 0 {
                    let g = list[pos]
                    if groupTokens[g] + length <= capacities[k] {
                        let slack = limit - groupTime[g]
                        if slack < chosenSlack { chosen = g; chosenSlack = slack; chosenK = k }
                        break
                    }
                    pos -= 1
                }
            }
            if chosen >= 0 {
                let k = chosenK
                if let at = byDegree[k].firstIndex(of: chosen) { byDegree[k].remove(at: at) }
                groupTime[chosen] += times[i * d + k]
                groupTokens[chosen] += length
                groupMembers[chosen].append(i)
                insert(chosen, into: &byDegree[k], by: groupTime)
                continue
            }
            // Open the smallest group that holds the sequence within the makespan.
            guard let k = (0 ..< d).first(where: { beta1 + times[i * d + $0] <= makespan }),
                  gpusUsed + degrees[k] <= worldSize else { return nil }
            gpusUsed += degrees[k]
            let g = groupTime.count
            groupDegree.append(k)
            groupTime.append(beta1 + times[i * d + k])
            groupTokens.append(length)
            groupMembers.append([i])
            insert(g, into: &byDegree[k], by: groupTime)
        }
        let groups = zip(groupDegree, groupMembers).map { (degree: degrees[$0], members: $1) }
        return Packing(groups: groups, makespan: groupTime.max() ?? 0)
    }

    private func insert(_ g: Int, into list: inout [Int], by time: [Double]) {
        var lo = 0, hi = list.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if time[list[mid]] <= time[g] { lo = mid + 1 } else { hi = mid }
        }
        list.insert(g, at: lo)
    }
}
