import FlexSPCore

/// The makespan search: a binary search on the makespan over greedy passes.
extension GroupPacker {
    /// Which open group a sequence joins, among those with room in time and memory.
    enum Fit: CaseIterable {
        /// The one left with the least time to spare.
        case time
        /// The one left with the fewest free tokens (when memory, not time, binds), among the
        /// 64 with the most time used.
        case memory
        /// The one with the most time to spare (LPT-like spreading once groups are open).
        case spread
    }

    /// Binary search on the makespan for one floor degree; nil if nothing fits.
    func search(lengths: [Int], times: TimeTable, floor: Int, fit: Fit, from bound: Double) -> Packing? {
        var low = bound
        var best: Packing?
        var target = low
        // Doubling up to 2^24 x the bound: past that, memory or GPUs are what bind.
        for _ in 0 ..< 24 {
            if let found = attempt(lengths: lengths, times: times, makespan: target, floor: floor, fit: fit) {
                best = found
                break
            }
            low = target
            target *= 2
        }
        guard var incumbent = best else { return nil }
        var high = min(target, incumbent.makespan)
        while (high - low) > 5e-4 * high {
            let mid = (low + high) / 2
            if let found = attempt(lengths: lengths, times: times, makespan: mid, floor: floor, fit: fit) {
                if found.makespan < incumbent.makespan { incumbent = found }
                high = min(mid, found.makespan)
            } else {
                low = mid
            }
        }
        return incumbent
    }

    /// One greedy pass with every group's time capped at `makespan`.
    func attempt(lengths: [Int], times: TimeTable, makespan: Double, floor: Int, fit: Fit) -> Packing? {
        let d = degrees.count
        let beta1 = model.beta1
        var groups: [OpenGroup] = []
        // Per degree, open groups sorted by time ascending.
        var byDegree = [[Int]](repeating: [], count: d)
        var gpusUsed = 0
        let worldSize = model.worldSize

        for (i, length) in lengths.enumerated() {
            var chosen: (group: Int, degreeIndex: Int)?
            var chosenScore = Double.infinity
            for k in 0 ..< d {
                let t = times[i, k]
                if !t.isFinite { continue }
                let limit = makespan - t
                let list = byDegree[k]
                // Groups at positions below `fitting` have time <= limit.
                var lo = 0, hi = list.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if groups[list[mid]].time <= limit { lo = mid + 1 } else { hi = mid }
                }
                let fitting = lo
                switch fit {
                case .time:
                    // The most loaded group within time that has memory room (capping this walk
                    // fragments memory badly on 1,024 GPUs).
                    for g in list[..<fitting].reversed() where groups[g].tokens + length <= capacities[k] {
                        let slack = limit - groups[g].time
                        if slack < chosenScore { chosen = (g, k); chosenScore = slack }
                        break
                    }
                case .spread:
                    for g in list[..<fitting] where groups[g].tokens + length <= capacities[k] {
                        // Most slack wins: compare on negated slack.
                        let score = -(limit - groups[g].time)
                        if score < chosenScore { chosen = (g, k); chosenScore = score }
                        break
                    }
                case .memory:
                    for g in list[max(0, fitting - 64) ..< fitting].reversed() {
                        let free = Double(capacities[k] - groups[g].tokens - length)
                        if free >= 0 && free < chosenScore { chosen = (g, k); chosenScore = free }
                    }
                }
            }
            if let (g, k) = chosen {
                if let at = byDegree[k].firstIndex(of: g) { byDegree[k].remove(at: at) }
                groups[g].time += times[i, k]
                groups[g].tokens += length
                groups[g].members.append(i)
                insert(g, into: &byDegree[k], by: groups)
                continue
            }
            // Open the smallest group that holds the sequence within the makespan.
            guard let k = (floor ..< d).first(where: { beta1 + times[i, $0] <= makespan }),
                  gpusUsed + degrees[k] <= worldSize else { return nil }
            gpusUsed += degrees[k]
            groups.append(OpenGroup(degreeIndex: k, time: beta1 + times[i, k], tokens: length, members: [i]))
            insert(groups.count - 1, into: &byDegree[k], by: groups)
        }
        return finished(groups)
    }

    /// Inserts group `g` into a list of groups kept sorted by time.
    private func insert(_ g: Int, into list: inout [Int], by groups: [OpenGroup]) {
        var lo = 0, hi = list.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if groups[list[mid]].time <= groups[g].time { lo = mid + 1 } else { hi = mid }
        }
        list.insert(g, at: lo)
    }
}
