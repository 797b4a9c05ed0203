import FlexSPCore

/// Packs one micro-batch's sequences into sequence-parallel groups of allowed degrees so that
/// the slowest group finishes as early as possible, using at most `worldSize` GPUs.
///
/// For each floor degree `f` it binary-searches the makespan `C`. For a given `C`, sequences
/// are taken longest first; each joins the open group where it leaves the least time to spare
/// (best fit; or the fewest free tokens, where memory binds; or the most time to spare) among those with room in time and
/// memory, or else opens a group of the smallest degree of at least `f` that holds it and
/// finishes within `C`. A local search then moves and swaps sequences off the slowest group.
/// The best packing over all floors and all three fits is kept.
///
/// - Complexity: O(D x log(1/eps) x K x D x log G) for K sequences, D degrees and G groups,
///   plus the memory walk when best-fit candidates are full, plus the local search.
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
    ///
    /// - Parameter thorough: try every floor degree; else stop at the first floor that fits
    ///   (usually floor 1: about D times faster).
    func pack(lengths: [Int], thorough: Bool = true) -> Packing? {
        guard !lengths.isEmpty else { return Packing(groups: [], makespan: 0) }
        let d = degrees.count
        // times[i * d + k]: time sequence i adds at degrees[k]; infinity where it does not fit.
        var times = [Double](repeating: .infinity, count: lengths.count * d)
        for (i, length) in lengths.enumerated() {
            for k in 0 ..< d where length <= capacities[k] {
                times[i * d + k] = model.sequenceTime(length: length, degree: degrees[k])
            }
        }
        let bound = lowerBound(lengths: lengths)
        guard bound.isFinite else { return nil }
        // Each floor is a smallest degree for new groups: floor 1 favours many small groups,
        // higher floors fewer, larger groups that pack with less fragmentation.
        var best: Packing?
        search: for floor in 0 ..< d {
            for fit in thorough ? Fit.allCases : [.time] {
                guard let found = search(lengths: lengths, times: times, floor: floor, fit: fit, from: bound) else { continue }
                let refined = refine(found, lengths: lengths, times: times)
                if refined.makespan < best?.makespan ?? .infinity { best = refined }
                if !thorough { break search }
            }
        }
        return best
    }

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
    private func search(lengths: [Int], times: [Double], floor: Int, fit: Fit, from bound: Double) -> Packing? {
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

    /// Local search on the slowest group: move one of its sequences to another group, or swap
    /// one with another group's, whenever that lowers the larger of the two groups' times
    /// below the current makespan. Stops when the slowest group cannot be improved.
    ///
    /// - Complexity: O(iterations x members of the slowest group x K).
    func refine(_ packing: Packing, lengths: [Int], times: [Double]) -> Packing {
        let d = degrees.count
        let index = Dictionary(uniqueKeysWithValues: degrees.enumerated().map { ($1, $0) })
        var members = packing.groups.map(\.members)
        let degreeIndex = packing.groups.map { index[$0.degree]! }
        var tokens = members.map { $0.reduce(0) { $0 + lengths[$1] } }
        var time = zip(members, degreeIndex).map { m, k in m.reduce(model.beta1) { $0 + times[$1 * d + k] } }
        let epsilon = 1e-9 * (time.max() ?? 1)
        for _ in 0 ..< 4 * lengths.count {
            guard let slowest = time.indices.max(by: { time[$0] < time[$1] }) else { break }
            let limit = time[slowest] - epsilon
            let ks = degreeIndex[slowest]
            // Best move or swap: (resulting larger time, member position, target group, target position or -1).
            var best: (Double, Int, Int, Int)?
            for (position, a) in members[slowest].enumerated() {
                let ta = times[a * d + ks]
                for h in time.indices where h != slowest {
                    let kh = degreeIndex[h]
                    let aThere = times[a * d + kh]
                    guard aThere.isFinite else { continue }
                    if tokens[h] + lengths[a] <= capacities[kh] {
                        let worse = max(time[slowest] - ta, time[h] + aThere)
                        if worse < limit && worse < best?.0 ?? .infinity { best = (worse, position, h, -1) }
                    }
                    for (other, b) in members[h].enumerated() {
                        let bHere = times[b * d + ks]
                        guard bHere.isFinite,
                              tokens[h] - lengths[b] + lengths[a] <= capacities[kh],
                              tokens[slowest] - lengths[a] + lengths[b] <= capacities[ks] else { continue }
                        let worse = max(time[slowest] - ta + bHere, time[h] - times[b * d + kh] + aThere)
                        if worse < limit && worse < best?.0 ?? .infinity { best = (worse, position, h, other) }
                    }
                }
            }
            guard let (_, position, h, other) = best else { break }
            let kh = degreeIndex[h]
            let a = members[slowest].remove(at: position)
            time[slowest] -= times[a * d + ks]
            tokens[slowest] -= lengths[a]
            if other >= 0 {
                let b = members[h].remove(at: other)
                time[h] -= times[b * d + kh]
                tokens[h] -= lengths[b]
                members[slowest].append(b)
                time[slowest] += times[b * d + ks]
                tokens[slowest] += lengths[b]
            }
            members[h].append(a)
            time[h] += times[a * d + kh]
            tokens[h] += lengths[a]
        }
        let groups = members.indices.filter { !members[$0].isEmpty }.map { g in
            (degree: degrees[degreeIndex[g]], members: members[g])
        }
        let makespan = members.indices.filter { !members[$0].isEmpty }.map { time[$0] }.max() ?? 0
        return Packing(groups: groups, makespan: makespan)
    }

    /// One greedy pass with every group's time capped at `makespan`.
    private func attempt(lengths: [Int], times: [Double], makespan: Double, floor: Int, fit: Fit) -> Packing? {
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
                switch fit {
                case .time:
                    // Walk down past groups that are out of memory (capping this walk fragments
                    // memory badly on 1,024 GPUs).
                    while pos >= 0 {
                        let g = list[pos]
                        if groupTokens[g] + length <= capacities[k] {
                            let slack = limit - groupTime[g]
                            if slack < chosenSlack { chosen = g; chosenSlack = slack; chosenK = k }
                            break
                        }
                        pos -= 1
                    }
                case .spread:
                    var first = 0
                    while first <= pos {
                        let g = list[first]
                        if groupTokens[g] + length <= capacities[k] {
                            // Most slack wins: compare on negated slack.
                            let score = -(limit - groupTime[g])
                            if score < chosenSlack { chosen = g; chosenSlack = score; chosenK = k }
                            break
                        }
                        first += 1
                    }
                case .memory:
                    let stop = max(-1, pos - 64)
                    while pos > stop {
                        let g = list[pos]
                        let free = Double(capacities[k] - groupTokens[g] - length)
                        if free >= 0 && free < chosenSlack { chosen = g; chosenSlack = free; chosenK = k }
                        pos -= 1
                    }
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
            guard let k = (floor ..< d).first(where: { beta1 + times[i * d + $0] <= makespan }),
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
