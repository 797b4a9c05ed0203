import FlexSPCore

/// Megatron-LM's dynamic context parallelism as published (PAPER.md section 6): sequences,
/// longest first, are packed into bins; each bin runs on a power-of-two group sized for its
/// longest sequence; a sequence joins the least-loaded bin whose per-GPU load (sum of s^2 / d)
/// stays within 5% of the balanced target, else opens a bin. Bins fill micro-batches first
/// fit by free GPUs; a new micro-batch opens when none has room.
public struct MegatronDCPSolver: Sendable {
    public static let slack = 0.05

    public init() {}

    /// - Complexity: O(K x B) for K sequences and B bins.
    public func solve(_ batch: Batch) throws(PlanningError) -> Solution {
        let model = batch.costModel
        let n = model.worldSize
        let m = Blaster.minimumMicroBatches(totalTokens: batch.totalTokens, costModel: model)
        let quadratic = batch.lengths.reduce(0.0) { $0 + Double($1) * Double($1) }
        let target = quadratic / Double(n * m) * (1 + Self.slack)

        var binDegree: [Int] = [], binLoad: [Double] = [], binTokens: [Int] = []
        var binMembers: [[Int]] = [], binMicroBatch: [Int] = []
        var freeGPUs: [Int] = []
        for (i, length) in batch.lengths.enumerated() {
            guard let needed = model.minimumDegree(length: length) else {
                throw .infeasible(strategy: "megatron-dcp", reason: "sequence \(batch.ids[i]) fits no group")
            }
            let s2 = Double(length) * Double(length)
            var chosen = -1
            for b in binDegree.indices where binDegree[b] >= needed
                && binTokens[b] + length <= model.tokenCapacity(degree: binDegree[b])
                && binLoad[b] + s2 / Double(binDegree[b]) <= target {
                if chosen < 0 || binLoad[b] < binLoad[chosen] { chosen = b }
            }
            if chosen >= 0 {
                binLoad[chosen] += s2 / Double(binDegree[chosen])
                binTokens[chosen] += length
                binMembers[chosen].append(i)
                continue
            }
            var microBatch = freeGPUs.firstIndex { $0 >= needed } ?? -1
            if microBatch < 0 {
                freeGPUs.append(n)
                microBatch = freeGPUs.count - 1
            }
            freeGPUs[microBatch] -= needed
            binDegree.append(needed)
            binLoad.append(s2 / Double(needed))
            binTokens.append(length)
            binMembers.append([i])
            binMicroBatch.append(microBatch)
        }
        var microBatches = [[(degree: Int, sequenceIDs: [Int])]](repeating: [], count: freeGPUs.count)
        var slowest = [Double](repeating: 0, count: freeGPUs.count)
        for b in binDegree.indices {
            microBatches[binMicroBatch[b]].append((degree: binDegree[b], sequenceIDs: binMembers[b].map { batch.ids[$0] }))
            let time = model.groupTime(lengths: binMembers[b].map { batch.lengths[$0] }, degree: binDegree[b])
            slowest[binMicroBatch[b]] = max(slowest[binMicroBatch[b]], time)
        }
        return Solution(microBatches: microBatches, stepTime: slowest.reduce(0, +))
    }
}
