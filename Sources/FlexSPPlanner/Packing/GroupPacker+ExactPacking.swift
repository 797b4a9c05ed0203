import FlexSPCore
import Foundation

/// Exact packing of small micro-batches, by dynamic programming over subsets.
extension GroupPacker {
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
}

/// `GroupPacker.exact`'s results by lengths, shared by parallel packings (nil results too).
final class ExactMemo: @unchecked Sendable {
    private var packings: [[Int]: GroupPacker.Packing?] = [:]
    private let lock = NSLock()

    subscript(lengths: [Int]) -> GroupPacker.Packing?? {
        get { lock.withLock { packings[lengths] } }
        set { lock.withLock { packings[lengths] = newValue ?? nil } }
    }
}
