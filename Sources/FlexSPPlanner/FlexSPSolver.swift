import Dispatch
import FlexSPCore
import Foundation

/// FlexSP's own solver: heterogeneous sequence-parallel groups per micro-batch, found in
/// milliseconds.
///
/// For each micro-batch count `M` in `[M_min, M_min + 4]` (the paper's Blaster range) it tries
/// three splits of the batch: the paper's token-balanced chunks, consecutive chunks that
/// minimise the estimated *sum* of makespans, and an interleaved split that lets short
/// sequences fill the GPUs beside long ones. Each micro-batch is packed by `GroupPacker`; the
/// plan with the least step time wins. Candidates run in parallel on all cores.
///
/// Restricting `degrees` to one value gives the paper's FlexSP-BatchAda building block.
///
/// - Complexity: O(M^2 K^2) for the time-balanced split plus 15 packings of
///   O(K D log G log(1/eps)) each, for K sequences, D degrees, G groups.
public struct FlexSPSolver: Sendable {
    /// Degrees the solver may use; nil: every degree the cost model allows.
    public var degrees: [Int]?
    public var extraMicroBatches: Int

    public init(degrees: [Int]? = nil, extraMicroBatches: Int = Blaster.extraMicroBatches) {
        self.degrees = degrees
        self.extraMicroBatches = extraMicroBatches
    }

    public func solve(_ batch: Batch) throws(PlanningError) -> Solution {
        let model = batch.costModel
        let allowed = (degrees ?? model.degrees).filter { model.degrees.contains($0) }
        let name = degrees.map { "degrees \($0)" } ?? "flexsp"
        guard let largest = allowed.max(), model.fits(tokens: batch.lengths[0], degree: largest) else {
            throw .infeasible(strategy: name, reason: "sequence \(batch.ids[0]) (\(batch.lengths[0]) tokens) fits no allowed degree \(allowed)")
        }
        let packer = GroupPacker(model: model, degrees: allowed)
        let figures = MicroBatchSplit.Figures(lengths: batch.lengths, model: model, degrees: allowed)
        let k = batch.count
        let minimum = max(
            Blaster.minimumMicroBatches(totalTokens: batch.totalTokens, costModel: model),
            (batch.totalTokens + figures.capacity - 1) / figures.capacity)
        let first = min(minimum, k)
        let last = min(minimum + extraMicroBatches, k)

        var candidates: [[[Int]]] = []
        let balanced = MicroBatchSplit.timeBalanced(figures, maxCount: last)
        for m in first ... last {
            candidates.append(Blaster.chunks(lengths: batch.lengths, count: m).map { Array($0) })
            if let split = balanced[m] { candidates.append(split.map { Array($0) }) }
            if let split = MicroBatchSplit.interleaved(figures, count: m) { candidates.append(split) }
        }
        var best = Self.bestOf(candidates, packer: packer, lengths: batch.lengths)
        // Fragmentation can defeat every split in the range; add micro-batches until one fits.
        var m = last + 1
        while best == nil && m <= k {
            best = Self.bestOf([Blaster.chunks(lengths: batch.lengths, count: m).map { Array($0) }],
                               packer: packer, lengths: batch.lengths)
            m += 1
        }
        guard let (split, packings) = best else {
            throw .infeasible(strategy: name, reason: "no split of \(k) sequences into micro-batches fits the memory budget")
        }
        var microBatches: [[(degree: Int, sequenceIDs: [Int])]] = []
        var stepTime = 0.0
        for (members, packing) in zip(split, packings) where !members.isEmpty {
            microBatches.append(packing.groups.map { group in
                (degree: group.degree, sequenceIDs: group.members.map { batch.ids[members[$0]] })
            })
            stepTime += packing.makespan
        }
        return Solution(microBatches: microBatches, stepTime: stepTime)
    }

    /// How many of the best splits (by a quick packing) get the thorough packing.
    static let finalists = 3

    /// Packs every candidate split quickly, then the best few thoroughly (in parallel), and
    /// returns the fastest feasible one.
    private static func bestOf(
        _ candidates: [[[Int]]], packer: GroupPacker, lengths: [Int]
    ) -> (split: [[Int]], packings: [GroupPacker.Packing])? {
        let quick = packAll(candidates, packer: packer, lengths: lengths, thorough: false)
        let order = quick.indices.filter { quick[$0] != nil }.sorted { quick[$0]!.0 < quick[$1]!.0 }
        let finalists = order.prefix(finalists).map { candidates[$0] }
        let thorough = packAll(finalists, packer: packer, lengths: lengths, thorough: true)
        var best: (split: [[Int]], packings: [GroupPacker.Packing])?
        var bestTime = Double.infinity
        for (c, result) in thorough.enumerated() {
            if let (time, packings) = result, time < bestTime - 1e-9 {
                bestTime = time
                best = (finalists[c].filter { !$0.isEmpty }, packings)
            }
        }
        return best
    }

    private static func packAll(
        _ candidates: [[[Int]]], packer: GroupPacker, lengths: [Int], thorough: Bool
    ) -> [(Double, [GroupPacker.Packing])?] {
        let results = Slots<(Double, [GroupPacker.Packing])>(count: candidates.count)
        DispatchQueue.concurrentPerform(iterations: candidates.count) { c in
            var packings: [GroupPacker.Packing] = []
            var total = 0.0
            for members in candidates[c] where !members.isEmpty {
                guard let packing = packer.pack(lengths: members.map { lengths[$0] }, thorough: thorough) else { return }
                packings.append(packing)
                total += packing.makespan
            }
            results[c] = (total, packings)
        }
        return results.values
    }
}

/// Result slots that parallel iterations fill, one slot each.
final class Slots<Value>: @unchecked Sendable {
    private var storage: [Value?]
    private let lock = NSLock()

    init(count: Int) { storage = Array(repeating: nil, count: count) }

    subscript(index: Int) -> Value? {
        get { lock.withLock { storage[index] } }
        set { lock.withLock { storage[index] = newValue } }
    }

    var values: [Value?] { lock.withLock { storage } }
}
