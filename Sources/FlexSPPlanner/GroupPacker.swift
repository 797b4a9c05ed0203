import FlexSPCore
import Foundation

/// Packs one micro-batch's sequences into sequence-parallel groups of allowed degrees so that
/// the slowest group finishes as early as possible, using at most `worldSize` GPUs.
///
/// Two families of packings are tried, and each is polished by a local search (`refine`):
///
/// - *Makespan search.* For each floor degree `f` it binary-searches the makespan `C`. For a
///   given `C`, sequences are taken longest first; each joins the open group where it leaves
///   the least time to spare (best fit; or the fewest free tokens, where memory binds; or the
///   most time to spare) among those with room in time and memory, or else opens a group of
///   the smallest degree of at least `f` that holds it and finishes within `C`.
/// - *Memory fill.* For each base degree `b`, every sequence goes to a group of degree `b` (or
///   of its own smallest degree, if `b` cannot hold it): the least-loaded group with room
///   (longest-processing-time first), or the one left with the fewest free tokens. This is
///   what wins when the micro-batch fills the GPUs' memory and the makespan search fragments.
///
/// A seed packing (another strategy's groups) can be given; it is refined and competes too.
/// Micro-batches of at most 8 sequences (on clusters small enough) are packed exactly instead.
///
/// - Complexity: O(D x log(1/eps) x K x D x log G) for K sequences, D degrees and G groups for
///   the search, O(D x K x G) for the fills, plus the local search.
struct GroupPacker: Sendable {
    /// A group of a packing: its degree and its members (indices into the packed lengths).
    struct Group: Sendable, Equatable {
        var degree: Int
        var members: [Int]
    }

    struct Packing: Sendable {
        var groups: [Group]
        var makespan: Double
    }

    /// The time each sequence adds to a group of each allowed degree (excluding `beta1`);
    /// infinity where the sequence alone does not fit the degree's memory.
    struct TimeTable {
        let degreeCount: Int
        private var values: [Double]

        init(lengths: [Int], packer: GroupPacker) {
            degreeCount = packer.degrees.count
            values = [Double](repeating: .infinity, count: lengths.count * degreeCount)
            for (i, length) in lengths.enumerated() {
                for k in 0 ..< degreeCount where length <= packer.capacities[k] {
                    values[i * degreeCount + k] = packer.model.sequenceTime(length: length, degree: packer.degrees[k])
                }
            }
        }

        /// Time of `sequence` at `degrees[degreeIndex]`.
        subscript(sequence: Int, degreeIndex: Int) -> Double { values[sequence * degreeCount + degreeIndex] }
    }

    let model: CostModel
    /// Allowed degrees, ascending.
    let degrees: [Int]
    /// Token capacity of a group of each allowed degree.
    let capacities: [Int]
    /// Exact packings found so far, by lengths: candidate splits often share a small
    /// micro-batch (the longest sequences), and the exhaustive search is the dearest step.
    private let exactMemo = ExactMemo()

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
    /// - Parameters:
    ///   - thorough: try every floor degree and fit; else stop at the first floor that fits
    ///     (usually floor 1: about D times faster; none when seeded) and try only the
    ///     spreading memory fill.
    ///   - seed: a valid packing of the same lengths to refine and compete with.
    func pack(lengths: [Int], thorough: Bool = true, seed: Packing? = nil) -> Packing? {
        guard !lengths.isEmpty else { return Packing(groups: [], makespan: 0) }
        let times = TimeTable(lengths: lengths, packer: self)
        let bound = lowerBound(lengths: lengths)
        guard bound.isFinite else { return nil }
        // A handful of sequences: the optimum itself, by exhaustive search.
        if exactIsCheap(count: lengths.count) {
            if let known = exactMemo[lengths] { return known }
            let packing = exact(lengths: lengths, times: times)
            exactMemo[lengths] = packing
            return packing
        }
        // Quick: refine only the best raw packing; thorough: refine each.
        var fills: [Packing] = []
        for base in 0 ..< degrees.count {
            for tight in thorough ? [false, true] : [false] {
                if let packing = fill(lengths: lengths, times: times, base: base, tight: tight) { fills.append(packing) }
            }
        }
        var best: Packing?
        func consider(_ packing: Packing) {
            let refined = refine(packing, lengths: lengths, times: times)
            if refined.makespan < best?.makespan ?? .infinity { best = refined }
        }
        // No packing beats the bound: stop there (one long sequence often sets it).
        var atBound: Bool { (best?.makespan ?? .infinity) <= bound * (1 + 1e-12) }
        guard thorough else {
            // Quick: the first floor that fits, the fills and the seed; refine only the best raw
            // one and the seed (a seeded quick packing is only a ranking: no search).
            var raw = fills
            if seed == nil {
                for floor in 0 ..< degrees.count {
                    if let packing = search(lengths: lengths, times: times, floor: floor, fit: .time, from: bound) {
                        raw.append(packing)
                        break
                    }
                }
            }
            if let first = raw.min(by: { $0.makespan < $1.makespan }) { consider(first) }
            if let seed { consider(seed) }
            return best
        }
        for packing in fills { consider(packing) }
        if let seed { consider(seed) }
        // Each floor is a smallest degree for new groups: floor 1 favours many small groups,
        // higher floors fewer, larger groups that pack with less fragmentation.
        for floor in 0 ..< degrees.count where !atBound {
            for fit in Fit.allCases where !atBound {
                if let packing = search(lengths: lengths, times: times, floor: floor, fit: fit, from: bound) { consider(packing) }
            }
        }
        return best
    }

    /// The most sequences `exact` takes, and its work budget (`3^K x N x D` steps).
    static let exactLimit = (count: 8, work: 4_000_000)

    func exactIsCheap(count: Int) -> Bool {
        guard count <= Self.exactLimit.count else { return false }
        var work = model.worldSize * degrees.count
        for _ in 0 ..< count { work *= 3 }
        return work <= Self.exactLimit.work
    }

    /// The optimal packing, by dynamic programming over subsets: the least makespan of each
    /// subset of sequences on at most `g` GPUs is the best, over the groups holding its first
    /// sequence and their degrees, of the larger of that group's time and the rest's least
    /// makespan on the other GPUs. Nil when no packing fits.
    ///
    /// - Complexity: O(3^K x N x D) for K sequences, N GPUs, D degrees.
    func exact(lengths: [Int], times: TimeTable) -> Packing? {
        let k = lengths.count, n = model.worldSize, d = degrees.count
        let full = (1 << k) - 1
        // groupTime[mask * d + degree index]: infinity where the subset does not fit.
        var groupTime = [Double](repeating: .infinity, count: (full + 1) * d)
        for mask in 1 ... full {
            let members = (0 ..< k).filter { mask & (1 << $0) != 0 }
            let tokens = members.reduce(0) { $0 + lengths[$1] }
            for index in 0 ..< d where tokens <= capacities[index] {
                groupTime[mask * d + index] = members.reduce(model.beta1) { $0 + times[$1, index] }
            }
        }
        // best[mask * (n + 1) + g] and the (group subset, degree index) that achieves it.
        var best = [Double](repeating: .infinity, count: (full + 1) * (n + 1))
        var choice = [(subset: Int, degreeIndex: Int)](repeating: (0, 0), count: (full + 1) * (n + 1))
        for g in 0 ... n { best[g] = 0 }
        for mask in 1 ... full {
            let first = mask & -mask
            for g in 1 ... n {
                var value = Double.infinity, chosen = (subset: 0, degreeIndex: 0)
                var subset = mask
                while subset > 0 {
                    if subset & first != 0 {
                        for index in 0 ..< d where degrees[index] <= g {
                            let time = groupTime[subset * d + index]
                            guard time < value else { continue }
                            let candidate = max(time, best[(mask ^ subset) * (n + 1) + g - degrees[index]])
                            if candidate < value { value = candidate; chosen = (subset, index) }
                        }
                    }
                    subset = (subset - 1) & mask
                }
                best[mask * (n + 1) + g] = value
                choice[mask * (n + 1) + g] = chosen
            }
        }
        guard best[full * (n + 1) + n].isFinite else { return nil }
        var groups: [Group] = []
        var mask = full, g = n
        while mask != 0 {
            let (subset, index) = choice[mask * (n + 1) + g]
            groups.append(Group(degree: degrees[index], members: (0 ..< k).filter { subset & (1 << $0) != 0 }))
            mask ^= subset
            g -= degrees[index]
        }
        return Packing(groups: groups, makespan: best[full * (n + 1) + n])
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
    private func search(lengths: [Int], times: TimeTable, floor: Int, fit: Fit, from bound: Double) -> Packing? {
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

    /// A group while a packing is built or refined: its degree as an index into `degrees`.
    private struct OpenGroup {
        var degreeIndex: Int
        var time: Double
        var tokens: Int
        var members: [Int]
    }

    private func finished(_ groups: [OpenGroup]) -> Packing {
        let used = groups.filter { !$0.members.isEmpty }
        return Packing(groups: used.map { Group(degree: degrees[$0.degreeIndex], members: $0.members) },
                       makespan: used.map(\.time).max() ?? 0)
    }

    /// One move of the local search: a member of the slowest group goes to group `target`, and
    /// `swapWith` (a position in the target) comes back, if set.
    private struct Move {
        /// The larger of the two groups' times after the move.
        var worse: Double
        /// Position of the moving sequence in the slowest group's members.
        var position: Int
        var target: Int
        var swapWith: Int?
    }

    /// Local search on the slowest group: move one of its sequences to another group (the best
    /// such move), or else swap one with a faster-running one of another group's, whenever that
    /// lowers the larger of the two groups' times below the current makespan. Stops when the
    /// slowest group cannot be improved.
    ///
    /// - Complexity: O(iterations x members of the slowest group x K).
    func refine(_ packing: Packing, lengths: [Int], times: TimeTable) -> Packing {
        let index = Dictionary(uniqueKeysWithValues: degrees.enumerated().map { ($1, $0) })
        var groups = packing.groups.map { group in
            let k = index[group.degree]!
            return OpenGroup(degreeIndex: k,
                             time: group.members.reduce(model.beta1) { $0 + times[$1, k] },
                             tokens: group.members.reduce(0) { $0 + lengths[$1] }, members: group.members)
        }
        let epsilon = 1e-9 * (groups.map(\.time).max() ?? 1)
        for _ in 0 ..< 4 * lengths.count {
            guard let slowest = groups.indices.max(by: { groups[$0].time < groups[$1].time }) else { break }
            let from = groups[slowest]
            let limit = from.time - epsilon
            let ks = from.degreeIndex
            // Moves first (O(members x G)); swaps (O(members x K)) only when no move helps.
            var best: Move?
            func consider(_ move: Move) {
                if move.worse < limit && move.worse < best?.worse ?? .infinity { best = move }
            }
            for swaps in [false, true] where best == nil {
                for (position, a) in from.members.enumerated() {
                    let ta = times[a, ks]
                    for h in groups.indices where h != slowest {
                        let to = groups[h]
                        let kh = to.degreeIndex
                        let aThere = times[a, kh]
                        guard aThere.isFinite else { continue }
                        guard swaps else {
                            if to.tokens + lengths[a] <= capacities[kh] {
                                consider(Move(worse: max(from.time - ta, to.time + aThere), position: position, target: h, swapWith: nil))
                            }
                            continue
                        }
                        // Only a shorter-running `b` can make the slowest group faster.
                        for (other, b) in to.members.enumerated() {
                            let bHere = times[b, ks]
                            guard bHere < ta,
                                  to.tokens - lengths[b] + lengths[a] <= capacities[kh],
                                  from.tokens - lengths[a] + lengths[b] <= capacities[ks] else { continue }
                            consider(Move(worse: max(from.time - ta + bHere, to.time - times[b, kh] + aThere),
                                          position: position, target: h, swapWith: other))
                        }
                    }
                }
            }
            guard let move = best else { break }
            let kh = groups[move.target].degreeIndex
            let a = groups[slowest].members.remove(at: move.position)
            groups[slowest].time -= times[a, ks]
            groups[slowest].tokens -= lengths[a]
            if let other = move.swapWith {
                let b = groups[move.target].members.remove(at: other)
                groups[move.target].time -= times[b, kh]
                groups[move.target].tokens -= lengths[b]
                groups[slowest].members.append(b)
                groups[slowest].time += times[b, ks]
                groups[slowest].tokens += lengths[b]
            }
            groups[move.target].members.append(a)
            groups[move.target].time += times[a, kh]
            groups[move.target].tokens += lengths[a]
        }
        return finished(groups)
    }

    /// One memory-filling pass at base degree `degrees[base]`: sequences longest first, each
    /// into a group of the base degree (or of its own smallest degree, if larger): the
    /// least-loaded one with room (opening a new group while GPUs are free), or with `tight`
    /// the one left with the fewest free tokens (opening only when none has room).
    private func fill(lengths: [Int], times: TimeTable, base: Int, tight: Bool) -> Packing? {
        var groups: [OpenGroup] = []
        var freeGPUs = model.worldSize
        let beta1 = model.beta1
        for (i, length) in lengths.enumerated() {
            guard let k = (base ..< degrees.count).first(where: { length <= capacities[$0] }) else { return nil }
            let t = times[i, k]
            let canOpen = freeGPUs >= degrees[k]
            var chosen: Int?, chosenScore = Double.infinity
            // Spreading, a new group (at beta1 + t) always beats joining one: skip the scan.
            let scan = tight || !canOpen
            for (g, group) in groups.enumerated() where scan && group.degreeIndex == k && group.tokens + length <= capacities[k] {
                let score = tight ? Double(capacities[k] - group.tokens - length) : group.time + t
                if score < chosenScore { chosen = g; chosenScore = score }
            }
            if canOpen && (chosen == nil || (!tight && beta1 + t < chosenScore)) {
                groups.append(OpenGroup(degreeIndex: k, time: beta1 + t, tokens: length, members: [i]))
                freeGPUs -= degrees[k]
            } else if let g = chosen {
                groups[g].time += t
                groups[g].tokens += length
                groups[g].members.append(i)
            } else {
                return nil
            }
        }
        return finished(groups)
    }

    /// One greedy pass with every group's time capped at `makespan`.
    private func attempt(lengths: [Int], times: TimeTable, makespan: Double, floor: Int, fit: Fit) -> Packing? {
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

/// `GroupPacker.exact`'s results by lengths, shared by parallel packings (nil results too).
private final class ExactMemo: @unchecked Sendable {
    private var packings: [[Int]: GroupPacker.Packing?] = [:]
    private let lock = NSLock()

    subscript(lengths: [Int]) -> GroupPacker.Packing?? {
        get { lock.withLock { packings[lengths] } }
        set { lock.withLock { packings[lengths] = newValue ?? nil } }
    }
}
