import Dispatch
import FlexSPCore
import Foundation

/// FlexSP's own solver: heterogeneous sequence-parallel groups per micro-batch, found in
/// milliseconds.
///
/// For each micro-batch count `M` in `[M_min, M_min + 4]` (the paper's Blaster range) it tries
/// three splits of the batch: the paper's token-balanced chunks, consecutive chunks that
/// minimise the estimated *sum* of makespans, and an interleaved split that lets short
/// sequences fill the GPUs beside long ones; and one split that fills each micro-batch's
/// memory before opening the next. The plans of the cheap baselines (Megatron's
/// dynamic CP, every static degree, the best single degree) are candidates too: their splits fill
/// memory where ours fragment, and their groups seed the packing. Each micro-batch is packed by
/// `GroupPacker`; the plan with the least step time wins, so flexsp is never slower than a
/// baseline it seeds from. Candidates run in parallel on all cores.
///
/// Restricting `degrees` to one value gives the paper's FlexSP-BatchAda building block (which
/// seeds from nothing).
///
/// - Complexity: O(M^2 K^2) for the time-balanced split plus about 20 packings of
///   O(K D log G log(1/eps) + D K G) each, for K sequences, D degrees, G groups.
public struct FlexSPSolver: Sendable {
    /// Degrees the solver may use; nil: every degree the cost model allows.
    public var degrees: [Int]?
    /// Micro-batch counts tried beyond the minimum.
    public var extraMicroBatches: Int

    public init(degrees: [Int]? = nil, extraMicroBatches: Int = Blaster.extraMicroBatches) {
        self.degrees = degrees
        self.extraMicroBatches = extraMicroBatches
    }

    /// A split of the batch into micro-batches (batch indices, longest first in each), with
    /// optionally a packing of each to start from (member indices local to the micro-batch).
    struct Candidate {
        var split: [[Int]]
        var seeds: [GroupPacker.Packing]?

        init(split: [[Int]]) {
            self.split = split.filter { !$0.isEmpty }
        }

        /// Another strategy's plan (groups of batch indices) as a split and seed packings.
        init(schedule: [[GroupPacker.Group]]) {
            var split: [[Int]] = []
            var seeds: [GroupPacker.Packing] = []
            for groups in schedule where !groups.isEmpty {
                let members = groups.flatMap(\.members).sorted()
                var local: [Int: Int] = [:]
                for (position, i) in members.enumerated() { local[i] = position }
                split.append(members)
                seeds.append(GroupPacker.Packing(
                    groups: groups.map { GroupPacker.Group(degree: $0.degree, members: $0.members.map { local[$0]! }) },
                    makespan: .infinity))
            }
            self.split = split
            self.seeds = seeds
        }
    }

    /// Plans the batch: the fastest plan found over the candidate splits and seeds.
    ///
    /// - Throws: `.infeasible` when the longest sequence fits no allowed degree or no split
    ///   fits the memory budget.
    public func solve(_ batch: Batch) throws(PlanningError) -> Solution {
        Solution(batch: batch, schedule: try schedule(batch))
    }

    /// The plan as groups of batch indices, per micro-batch.
    func schedule(_ batch: Batch) throws(PlanningError) -> [[GroupPacker.Group]] {
        let model = batch.costModel
        let allowed = (degrees ?? model.degrees).filter { model.degrees.contains($0) }
        let name = degrees.map { "degrees \($0)" } ?? "flexsp"
        guard let largest = allowed.max(), model.fits(tokens: batch.lengths[0], degree: largest) else {
            throw .infeasible(strategy: name, reason: "sequence \(batch.ids[0]) (\(batch.lengths[0]) tokens) fits no allowed degree \(allowed)")
        }
        let packer = GroupPacker(model: model, degrees: allowed)
        let figures = MicroBatchSplit.Figures(lengths: batch.lengths, model: model, degrees: allowed)
        let k = batch.count
        let capacity = GroupCapacity(batch).microBatch
        let minimum = max(
            LowerBound.minimumMicroBatches(batch, capacity: capacity),
            (batch.totalTokens + figures.capacity - 1) / figures.capacity)
        let first = min(minimum, k)
        let last = min(minimum + extraMicroBatches, k)

        var candidates: [Candidate] = []
        let balanced = MicroBatchSplit.timeBalanced(figures, maxCount: last)
        let chunks = Blaster.chunks(lengths: batch.lengths, counts: first ... last)
        for m in first ... last {
            candidates.append(Candidate(split: chunks[m - first].map { Array($0) }))
            if let split = balanced[m] { candidates.append(Candidate(split: split.map { Array($0) })) }
            if let split = MicroBatchSplit.interleaved(figures, count: m) { candidates.append(Candidate(split: split)) }
        }
        if let split = MicroBatchSplit.filled(figures) { candidates.append(Candidate(split: split.map { Array($0) })) }
        if degrees == nil { candidates += Self.seeds(batch) }
        // Front-loaded: the first micro-batch takes the batch's shortest sequences, from the
        // last micro-batch on, until it holds a share of the room left to what a micro-batch
        // can hold. A step is a sum of makespans, so balance is not the goal, and larger groups
        // hold more tokens per GPU than the degree-1 groups short sequences get. Only for a few
        // micro-batches, where one is a large share of the step (measured: M = 2 gains).
        var front: [Candidate] = []
        if degrees == nil, first <= Self.frontLoadedUpTo {
            for base in [balanced[first]?.map { Array($0) }, chunks[0].map { Array($0) }] {
                guard let base, base.count > 1 else { continue }
                for share in [0.15, 0.3, 0.45] {
                    front.append(Candidate(split: MicroBatchSplit.frontLoaded(base, lengths: batch.lengths, capacity: capacity, share: share)))
                }
            }
        }
        // A micro-batch with more tokens than the GPUs hold cannot be packed: drop such splits
        // before packing (with many micro-batches, token-balanced chunks often are).
        let overfull = { (candidate: Candidate) in candidate.split.contains { $0.reduce(0) { $0 + batch.lengths[$1] } > figures.capacity } }
        candidates.removeAll(where: overfull)
        front.removeAll(where: overfull)
        // The front-loaded splits compete for their own finalists, so they never displace the
        // others' finalists: the plan is never worse than without them. Their finalists'
        // thorough packings stop once they cannot beat the others' plan.
        var plans: [[[GroupPacker.Group]]] = []
        let main = Self.bestOf(candidates, packer: packer, lengths: batch.lengths)
        if let main { plans.append(main.schedule) }
        if let other = Self.bestOf(front, packer: packer, lengths: batch.lengths, beat: main?.time ?? .infinity) {
            plans.append(other.schedule)
        }
        if let best = plans.first {
            var plan = Self.fillSlack(best, packer: packer, lengths: batch.lengths)
            for other in plans.dropFirst() where Self.stepTime(other, model: model, lengths: batch.lengths) < Self.stepTime(plan, model: model, lengths: batch.lengths) - 1e-9 {
                let filled = Self.fillSlack(other, packer: packer, lengths: batch.lengths)
                if Self.stepTime(filled, model: model, lengths: batch.lengths) < Self.stepTime(plan, model: model, lengths: batch.lengths) - 1e-9 { plan = filled }
            }
            return plan
        }
        // Fragmentation can defeat every split in the range; add micro-batches (a quarter more
        // each time) until one fits.
        var m = last + 1
        while m <= k {
            let chunks = Candidate(split: Blaster.chunks(lengths: batch.lengths, count: m).map { Array($0) })
            if let best = Self.bestOf([chunks], packer: packer, lengths: batch.lengths) {
                return best.schedule
            }
            m = m == k ? k + 1 : min(k, m + max(1, m / 4))
        }
        throw .infeasible(strategy: name, reason: "no split of \(k) sequences into micro-batches fits the memory budget")
    }

    /// The baselines' plans: Megatron's dynamic CP, every static degree that holds the batch,
    /// and the best single degree (`batch-ada`).
    static func seeds(_ batch: Batch) -> [Candidate] {
        var schedules: [[[GroupPacker.Group]]] = []
        if let dcp = try? MegatronDCPSolver().schedule(batch) { schedules.append(dcp) }
        for degree in batch.costModel.degrees where batch.costModel.fits(tokens: batch.lengths[0], degree: degree) {
            if let plan = try? StaticSolver(degree: degree).schedule(batch) { schedules.append(plan) }
        }
        if let ada = try? BatchAdaptiveSolver().schedule(batch) { schedules.append(ada) }
        return schedules.map { Candidate(schedule: $0) }
    }

    /// The most micro-batches (at the minimum) for which front-loaded splits are tried.
    static let frontLoadedUpTo = 4

    /// Sum of the micro-batches' makespans.
    static func stepTime(_ schedule: [[GroupPacker.Group]], model: CostModel, lengths: [Int]) -> Double {
        schedule.reduce(0) { total, groups in
            total + (groups.map { model.groupTime(lengths: $0.members.map { lengths[$0] }, degree: $0.degree) }.max() ?? 0)
        }
    }

    /// How many of the best candidates (by a quick packing) get the thorough packing.
    static let finalists = 2

    /// Packs every candidate quickly, then the best `finalists` thoroughly (in parallel), and
    /// returns the fastest feasible plan as groups of batch indices with its step time; nil
    /// if none fits or none is faster than `beat`.
    static func bestOf(
        _ candidates: [Candidate], packer: GroupPacker, lengths: [Int], finalists: Int = finalists, beat: Double = .infinity
    ) -> (schedule: [[GroupPacker.Group]], time: Double)? {
        let quick = packAll(candidates, packer: packer, lengths: lengths, thorough: false, keep: finalists, below: .infinity)
        let order = quick.indices.filter { quick[$0] != nil }.sorted { quick[$0]!.time < quick[$1]!.time }
        let finalists = order.prefix(finalists).map { candidates[$0] }
        let thorough = packAll(finalists, packer: packer, lengths: lengths, thorough: true, keep: 1, below: beat)
        var best: (time: Double, candidate: Int)?
        for (c, result) in thorough.enumerated() {
            if let result, result.time < (best?.time ?? .infinity) - 1e-9 { best = (result.time, c) }
        }
        guard let best, let packings = thorough[best.candidate]?.packings else { return nil }
        let schedule = zip(finalists[best.candidate].split, packings).map { members, packing in
            packing.groups.map { GroupPacker.Group(degree: $0.degree, members: $0.members.map { members[$0] }) }
        }
        return (schedule, best.time)
    }

    /// Search across micro-batches: every group that finishes before its micro-batch does has
    /// idle time (and a micro-batch may leave GPUs idle). Sequences of other micro-batches,
    /// longest first, move into that idle time where they fit it and the group's memory, so
    /// the slowest micro-batches stay as they are and the others lose work; those are then
    /// repacked (seeded with what is left of their groups), and the result is kept if the step
    /// got faster. A micro-batch left empty disappears, saving its `beta1`.
    ///
    /// - Complexity: O(M x (G + I) x K) for the moves, plus one packing per changed micro-batch.
    static func fillSlack(_ schedule: [[GroupPacker.Group]], packer: GroupPacker, lengths: [Int]) -> [[GroupPacker.Group]] {
        let model = packer.model
        func time(_ group: GroupPacker.Group) -> Double { model.groupTime(lengths: group.members.map { lengths[$0] }, degree: group.degree) }
        func makespan(_ groups: [GroupPacker.Group]) -> Double { groups.map(time).max() ?? 0 }
        var plan = schedule
        let before = plan.reduce(0) { $0 + makespan($1) }
        var home = [Int](repeating: -1, count: lengths.count)  // micro-batch of each sequence
        for (m, groups) in plan.enumerated() { for g in groups { for i in g.members { home[i] = m } } }
        let order = plan.indices.sorted { makespan(plan[$0]) > makespan(plan[$1]) }
        var changed = Set<Int>()
        var moved = [Bool](repeating: false, count: lengths.count)
        for a in order {
            let limit = makespan(plan[a])
            // Candidates: sequences of other micro-batches not yet moved, longest first.
            let pool = lengths.indices.filter { home[$0] != a && !moved[$0] }  // batch order: longest first
            guard !pool.isEmpty else { continue }
            var groups = plan[a]
            var times = groups.map(time)
            var tokens = groups.map { $0.members.reduce(0) { $0 + lengths[$1] } }
            var idle = model.worldSize - groups.reduce(0) { $0 + $1.degree }
            var took: [Int] = []
            for i in pool {
                // Into the group with the least idle time that holds it; else a new group on idle GPUs.
                var best: Int?, bestSlack = Double.infinity
                for g in groups.indices where tokens[g] + lengths[i] <= model.tokenCapacity(degree: groups[g].degree) {
                    let slack = limit - times[g] - model.sequenceTime(length: lengths[i], degree: groups[g].degree)
                    if slack >= 0 && slack < bestSlack { best = g; bestSlack = slack }
                }
                if best == nil, let d = packer.degrees.first(where: {
                    $0 <= idle && model.fits(tokens: lengths[i], degree: $0)
                        && model.beta1 + model.sequenceTime(length: lengths[i], degree: $0) <= limit
                }) {
                    groups.append(GroupPacker.Group(degree: d, members: []))
                    times.append(model.beta1)
                    tokens.append(0)
                    idle -= d
                    best = groups.count - 1
                }
                guard let g = best else { continue }
                groups[g].members.append(i)
                times[g] += model.sequenceTime(length: lengths[i], degree: groups[g].degree)
                tokens[g] += lengths[i]
                took.append(i)
            }
            guard !took.isEmpty else { continue }
            for i in took {
                let from = home[i]
                for g in plan[from].indices { plan[from][g].members.removeAll { $0 == i } }
                plan[from].removeAll { $0.members.isEmpty }
                changed.insert(from)
                home[i] = a
                moved[i] = true
            }
            plan[a] = groups
        }
        guard !changed.isEmpty else { return schedule }
        // Repack what lost sequences, keeping each one's remaining groups if they are better.
        for m in changed where !plan[m].isEmpty {
            let members = plan[m].flatMap(\.members).sorted()
            var local: [Int: Int] = [:]
            for (position, i) in members.enumerated() { local[i] = position }
            let seed = GroupPacker.Packing(
                groups: plan[m].map { GroupPacker.Group(degree: $0.degree, members: $0.members.map { local[$0]! }) },
                makespan: .infinity)
            guard let packing = packer.pack(lengths: members.map { lengths[$0] }, thorough: true, seed: seed) else { continue }
            plan[m] = packing.groups.map { GroupPacker.Group(degree: $0.degree, members: $0.members.map { members[$0] }) }
        }
        plan.removeAll { $0.isEmpty }
        let after = plan.reduce(0) { $0 + makespan($1) }
        return after < before - 1e-9 ? plan : schedule
    }

    /// Packs every candidate's micro-batches and returns each candidate's total makespan and
    /// packings; nil where a micro-batch does not fit, or where the candidate provably cannot
    /// be among the `keep` fastest: its packed micro-batches plus the lower bounds of the rest
    /// already exceed the `keep`-th best total finished so far. Candidates run cheapest bound
    /// first, so the threshold is tight early; the survivors, and so the `keep` fastest, are
    /// the same as without pruning.
    private static func packAll(
        _ candidates: [Candidate], packer: GroupPacker, lengths: [Int], thorough: Bool, keep: Int, below: Double
    ) -> [(time: Double, packings: [GroupPacker.Packing])?] {
        let results = Slots<(time: Double, packings: [GroupPacker.Packing])>(count: candidates.count)
        let bounds = candidates.map { candidate in
            candidate.split.map { members in packer.lowerBound(lengths: members.map { lengths[$0] }) }
        }
        let order = candidates.indices.sorted { bounds[$0].reduce(0, +) < bounds[$1].reduce(0, +) }
        let best = BestTotals(keep: keep, below: below)
        DispatchQueue.concurrentPerform(iterations: candidates.count) { position in
            let c = order[position]
            // rest[b]: the bounds of micro-batches b... still to pack.
            var rest = bounds[c]
            for b in rest.indices.reversed().dropFirst() { rest[b] += rest[b + 1] }
            var packings: [GroupPacker.Packing] = []
            var total = 0.0
            for (b, members) in candidates[c].split.enumerated() {
                if total + rest[b] > best.threshold * (1 + 1e-9) { return }
                guard let packing = packer.pack(lengths: members.map { lengths[$0] }, thorough: thorough,
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
