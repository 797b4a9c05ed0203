import FlexSPCore

/// FlexSP's own solver: heterogeneous sequence-parallel groups per micro-batch, found in
/// milliseconds.
///
/// For each micro-batch count `M` in `[M_min, M_min + 4]` (the paper's Blaster range) it tries
/// three splits of the batch: the paper's token-balanced chunks, consecutive chunks that
/// minimise the estimated *sum* of makespans (at `M_min` also under the memory-aware estimate:
/// `MicroBatchSplit`), and an interleaved split that lets short sequences fill the GPUs beside
/// long ones; and one split that fills each micro-batch's memory before opening the next.
/// Splits that coincide are packed once. The plans of the cheap baselines (Megatron's
/// dynamic CP, every static degree, the best single degree) are candidates too: their splits fill
/// memory where ours fragment, and their groups seed the packing. Each micro-batch is packed by
/// `GroupPacker`; the plan with the least step time wins, so flexsp is never slower than a
/// baseline it seeds from. Candidates, seeds, repacks and the blocks of each packing run side
/// by side on up to `threads` cores (`Parallel.map`), gathered in a fixed order: the plan does
/// not depend on `threads`.
///
/// Restricting `degrees` to one value gives the paper's FlexSP-BatchAda building block (which
/// seeds from nothing).
///
///     let solution = try await FlexSPSolver(threads: 4).solve(batch)
///
/// - Complexity: O(M^2 K^2) for the time-balanced split plus about 20 packings of
///   O(K D log G log(1/eps) + D K G) each, for K sequences, D degrees, G groups (on 1,024 GPUs
///   and more, G is a block's groups: `GroupPacker+Blocks.swift`).
public struct FlexSPSolver: Sendable {
    /// Degrees the solver may use; nil: every degree the cost model allows.
    public var degrees: [Int]?
    /// Micro-batch counts tried beyond the minimum.
    public var extraMicroBatches: Int
    /// Packings run at once (candidates, seeds, repacks); the plan is the same for any count.
    public var threads: Int

    public init(degrees: [Int]? = nil, extraMicroBatches: Int = Blaster.extraMicroBatches, threads: Int = Planner.allCores) {
        self.degrees = degrees
        self.extraMicroBatches = extraMicroBatches
        self.threads = max(1, threads)
    }

    /// Plans the batch: the fastest plan found over the candidate splits and seeds.
    ///
    /// - Throws: `.infeasible` when the longest sequence fits no allowed degree or no split
    ///   fits the memory budget.
    public func solve(_ batch: Batch) async throws(PlanningError) -> Solution {
        Solution(batch: batch, schedule: try await schedule(batch))
    }

    /// The plan as groups of batch indices, per micro-batch, on at most `threads` threads (or
    /// the enclosing plan's budget: `Parallel.withThreads`).
    func schedule(_ batch: Batch) async throws(PlanningError) -> Schedule {
        try await Parallel.withThreads(threads) { () async throws(PlanningError) in try await search(batch) }
    }

    /// The fastest plan found over the candidate splits and seeds.
    private func search(_ batch: Batch) async throws(PlanningError) -> Schedule {
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

        // The splits do not depend on one another: built side by side, each piece's splits for
        // the counts first...last (nil where a split does not exist).
        let counts = Array(first ... last)
        let pieces = await Parallel.map(4 + counts.count) { piece -> [[[Int]]?] in
            switch piece {
            case 0: Blaster.chunks(lengths: batch.lengths, counts: first ... last).map { $0.map { Array($0) } }
            case 1: MicroBatchSplit.timeBalanced(figures, maxCount: last)[first ... last].map { $0?.map { Array($0) } }
            case 2: [MicroBatchSplit.filled(figures)?.map { Array($0) }]
            // At the fewest micro-batches, where a node-sized sequence's micro-batch fills the
            // memory beside it, also the memory-aware estimate's split.
            case 3: [MicroBatchSplit.timeBalanced(figures, maxCount: first, memory: true)[first]?.map { Array($0) }]
            default: [MicroBatchSplit.interleaved(figures, count: counts[piece - 4])]
            }
        }
        let (chunks, balanced, memoryBalanced) = (pieces[0], pieces[1], pieces[3][0])
        var candidates: [Candidate] = []
        // Splits often coincide (the interleaved split at every M, the filled one): each is
        // packed once, the first time it comes.
        var seen = Set<[[Int]]>()
        func add(_ split: [[Int]]) {
            let candidate = Candidate(split: split)
            if seen.insert(candidate.split).inserted { candidates.append(candidate) }
        }
        for j in counts.indices {
            add(chunks[j]!)
            if let split = balanced[j] { add(split) }
            if j == 0, let split = memoryBalanced { add(split) }
            if let split = pieces[4 + j][0] { add(split) }
        }
        if let split = pieces[2][0] { add(split) }
        if degrees == nil { candidates += await Self.seeds(batch) }
        // Front-loaded: the first micro-batch takes the batch's shortest sequences, from the
        // last micro-batch on, until it holds a share of the room left to what a micro-batch
        // can hold. A step is a sum of makespans, so balance is not the goal, and larger groups
        // hold more tokens per GPU than the degree-1 groups short sequences get. Only for a few
        // micro-batches, where one is a large share of the step (measured: M = 2 gains). From
        // the time-balanced splits (both estimates) and the token-balanced chunks.
        var front: [Candidate] = []
        if degrees == nil, first <= Self.frontLoadedUpTo {
            for base in [balanced[0], chunks[0], memoryBalanced == balanced[0] ? nil : memoryBalanced] {
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
        var plans: [Schedule] = []
        let main = await Self.bestOf(candidates, packer: packer, lengths: batch.lengths)
        if let main { plans.append(main.schedule) }
        if let other = await Self.bestOf(front, packer: packer, lengths: batch.lengths, beat: main?.time ?? .infinity) {
            plans.append(other.schedule)
        }
        if let best = plans.first {
            var plan = await Self.fillSlack(best, packer: packer, lengths: batch.lengths)
            let length: (Int) -> Int? = { batch.lengths[$0] }
            for other in plans.dropFirst() where other.stepTime(model: model, length: length) < plan.stepTime(model: model, length: length) - 1e-9 {
                let filled = await Self.fillSlack(other, packer: packer, lengths: batch.lengths)
                if filled.stepTime(model: model, length: length) < plan.stepTime(model: model, length: length) - 1e-9 { plan = filled }
            }
            // Unloading only where the cluster is packed whole: with block packing its quick
            // packings cost 9% more solve time at 16,384 sequences on 4,096 GPUs, for no gain.
            guard degrees == nil, packer.blockPacker() == nil else { return plan }
            return await Self.unload(plan, packer: packer, lengths: batch.lengths)
        }
        // Fragmentation can defeat every split in the range; add micro-batches (a quarter more
        // each time) until one fits.
        var m = last + 1
        while m <= k {
            let chunks = Candidate(split: Blaster.chunks(lengths: batch.lengths, count: m).map { Array($0) })
            if let best = await Self.bestOf([chunks], packer: packer, lengths: batch.lengths) {
                return best.schedule
            }
            m = m == k ? k + 1 : min(k, m + max(1, m / 4))
        }
        throw .infeasible(strategy: name, reason: "no split of \(k) sequences into micro-batches fits the memory budget")
    }

    /// The most micro-batches (at the minimum) for which front-loaded splits are tried.
    static let frontLoadedUpTo = 4
}
