import FlexSPCore

/// DeepSpeed-Ulysses-style static sequence parallelism: one degree `D` for every batch.
/// Sequences are packed best-fit decreasing by tokens into bins of one group's capacity; the
/// bins, slowest first, fill micro-batches of `N / D` groups each.
public struct StaticSolver: Sendable {
    /// The one degree every group has.
    public var degree: Int

    public init(degree: Int) { self.degree = degree }

    /// Plans the batch at `degree`.
    ///
    /// - Throws: `.invalidStaticDegree` for a degree the cost model does not allow,
    ///   `.infeasible` when the longest sequence does not fit a group of that degree.
    /// - Complexity: O(K x B_open) for K sequences and B_open bins that can still take the
    /// shortest sequence.
    public func solve(_ batch: Batch) throws(PlanningError) -> Solution {
        Solution(batch: batch, schedule: try schedule(batch))
    }

    /// The plan as groups of batch indices, per micro-batch.
    func schedule(_ batch: Batch) throws(PlanningError) -> Schedule {
        let model = batch.costModel
        guard model.degrees.contains(degree) else { throw .invalidStaticDegree(degree, allowed: model.degrees) }
        let capacity = model.tokenCapacity(degree: degree)
        guard batch.lengths[0] <= capacity else {
            throw .infeasible(strategy: "static:\(degree)",
                              reason: "sequence \(batch.ids[0]) has \(batch.lengths[0]) tokens; a degree-\(degree) group holds \(capacity)")
        }
        var binTokens: [Int] = []
        var binMembers: [[Int]] = []
        // Bins that can still take the shortest sequence, in index order: a full bin is never
        // looked at again (at scale most bins end full, and scanning them was K x bins).
        let shortest = batch.lengths.last ?? 0
        var open: [Int] = []
        for (i, length) in batch.lengths.enumerated() {
            // Best fit: the fullest bin that still has room.
            var chosen: Int?
            for b in open where binTokens[b] + length <= capacity {
                if chosen.map({ binTokens[b] > binTokens[$0] }) ?? true { chosen = b }
            }
            if let b = chosen {
                binTokens[b] += length
                binMembers[b].append(i)
                if binTokens[b] + shortest > capacity { open.removeAll { $0 == b } }
            } else {
                binTokens.append(length)
                binMembers.append([i])
                if length + shortest <= capacity { open.append(binTokens.count - 1) }
            }
        }
        let bins = binMembers.map { members in
            (time: model.groupTime(lengths: members.map { batch.lengths[$0] }, degree: degree), members: members)
        }.sorted { $0.time > $1.time }
        let perMicroBatch = model.worldSize / degree
        return Schedule(stride(from: 0, to: bins.count, by: perMicroBatch).map { start in
            bins[start ..< min(start + perMicroBatch, bins.count)].map { Schedule.Group(degree: degree, members: $0.members) }
        })
    }
}
