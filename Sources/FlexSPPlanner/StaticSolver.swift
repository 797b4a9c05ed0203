import FlexSPCore

/// DeepSpeed-Ulysses-style static sequence parallelism: one degree `D` for every batch.
/// Sequences are packed best-fit decreasing by tokens into bins of one group's capacity; the
/// bins, slowest first, fill micro-batches of `N / D` groups each.
public struct StaticSolver: Sendable {
    public var degree: Int

    public init(degree: Int) { self.degree = degree }

    /// - Complexity: O(K x B) for K sequences and B bins.
    public func solve(_ batch: Batch) throws(PlanningError) -> Solution {
        let model = batch.costModel
        guard model.degrees.contains(degree) else { throw .invalidStaticDegree(degree, allowed: model.degrees) }
        let capacity = model.tokenCapacity(degree: degree)
        guard batch.lengths[0] <= capacity else {
            throw .infeasible(strategy: "static:\(degree)",
                              reason: "sequence \(batch.ids[0]) has \(batch.lengths[0]) tokens; a degree-\(degree) group holds \(capacity)")
        }
        var binTokens: [Int] = []
        var binMembers: [[Int]] = []
        for (i, length) in batch.lengths.enumerated() {
            // Best fit: the fullest bin that still has room.
            var chosen = -1
            for b in binTokens.indices where binTokens[b] + length <= capacity {
                if chosen < 0 || binTokens[b] > binTokens[chosen] { chosen = b }
            }
            if chosen < 0 {
                binTokens.append(length)
                binMembers.append([i])
            } else {
                binTokens[chosen] += length
                binMembers[chosen].append(i)
            }
        }
        let bins = binMembers.map { members in
            (time: model.groupTime(lengths: members.map { batch.lengths[$0] }, degree: degree),
             ids: members.map { batch.ids[$0] })
        }.sorted { $0.time > $1.time }
        let perMicroBatch = model.worldSize / degree
        var microBatches: [[(degree: Int, sequenceIDs: [Int])]] = []
        var stepTime = 0.0
        for start in stride(from: 0, to: bins.count, by: perMicroBatch) {
            let slice = bins[start ..< min(start + perMicroBatch, bins.count)]
            microBatches.append(slice.map { (degree: degree, sequenceIDs: $0.ids) })
            stepTime += slice.first!.time
        }
        return Solution(microBatches: microBatches, stepTime: stepTime)
    }
}
