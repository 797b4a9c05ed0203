import FlexSPCore
import Foundation

/// The tournament: every candidate packed quickly, the best few thoroughly, in parallel.
extension FlexSPSolver {
    /// How many of the best candidates (by a quick packing) get the thorough packing.
    static let finalists = 2

    /// Packs every candidate quickly, then the best `finalists` thoroughly (in parallel), and
    /// returns the fastest feasible plan as groups of batch indices with its step time; nil
    /// if none fits or none is faster than `beat`.
    static func bestOf(
        _ candidates: [Candidate], packer: GroupPacker, lengths: [Int], finalists: Int = finalists, beat: Double = .infinity) async -> (schedule: Schedule, time: Double)? {
        let quick = await packAll(candidates, packer: packer, lengths: lengths, thorough: false, keep: finalists, below: .infinity)
        // Ties go to the earlier candidate, so the order never depends on which were pruned.
        let order = quick.indices.filter { quick[$0] != nil }.sorted { (quick[$0]!.time, $0) < (quick[$1]!.time, $1) }
        let finalists = order.prefix(finalists).map { candidates[$0] }
        let thorough = await packAll(finalists, packer: packer, lengths: lengths, thorough: true, keep: 1, below: beat)
        var best: (time: Double, candidate: Int)?
        for (c, result) in thorough.enumerated() {
            if let result, result.time <= beat * (1 + 1e-9), result.time < (best?.time ?? .infinity) - 1e-9 { best = (result.time, c) }
        }
        guard let best, let packings = thorough[best.candidate]?.packings else { return nil }
        let schedule = Schedule(zip(finalists[best.candidate].split, packings).map { members, packing in
            packing.groups.map { GroupPacker.Group(degree: $0.degree, members: $0.members.map { members[$0] }) }
        })
        return (schedule, best.time)
    }

    /// Packs every candidate's micro-batches and returns each candidate's total makespan and
    /// packings; nil where a micro-batch does not fit, or where the candidate provably cannot
    /// be among the `keep` fastest: its packed micro-batches plus the lower bounds of the rest
    /// already exceed the `keep`-th best total finished so far. Candidates run cheapest bound
    /// first, so the threshold is tight early; the survivors, and so the `keep` fastest, are
    /// the same as without pruning.
    private static func packAll(
        _ candidates: [Candidate], packer: GroupPacker, lengths: [Int], thorough: Bool, keep: Int, below: Double
    ) async -> [(time: Double, packings: [GroupPacker.Packing])?] {
        let results = Slots<(time: Double, packings: [GroupPacker.Packing])>(count: candidates.count)
        let least = packer.leastCosts(lengths: lengths)
        let bounds = candidates.map { candidate in candidate.split.map { least.lowerBound(members: $0) } }
        let order = candidates.indices.sorted { bounds[$0].reduce(0, +) < bounds[$1].reduce(0, +) }
        let best = BestTotals(keep: keep, below: below)
        _ = await Parallel.map(candidates.count) { position in
            let c = order[position]
            // rest[b]: the bounds of micro-batches b... still to pack.
            var rest = bounds[c]
            for b in rest.indices.reversed().dropFirst() { rest[b] += rest[b + 1] }
            var packings: [GroupPacker.Packing] = []
            var total = 0.0
            for (b, members) in candidates[c].split.enumerated() {
                if total + rest[b] > best.threshold * (1 + 1e-9) { return }
                guard let packing = await packer.pack(lengths: members.map { lengths[$0] }, thorough: thorough,
                                                seed: candidates[c].seeds?[b]) else { return }
                packings.append(packing)
                total += packing.makespan
            }
            best.record(total)
            results[c] = (total, packings)
        }
        return results.values
    }
}

/// The `keep` least totals recorded so far, shared by parallel iterations.
final class BestTotals: @unchecked Sendable {
    private var totals: [Double] = []
    private let keep: Int
    private let below: Double
    private let lock = NSLock()

    init(keep: Int, below: Double) {
        self.keep = keep
        self.below = below
    }

    /// The `keep`-th least total recorded, or `below` if that is less (infinity until `keep`
    /// are recorded).
    var threshold: Double { lock.withLock { min(below, totals.count < keep ? .infinity : totals[keep - 1]) } }

    func record(_ total: Double) {
        lock.withLock {
            totals.append(total)
            totals.sort()
            if totals.count > keep { totals.removeLast() }
        }
    }
}
