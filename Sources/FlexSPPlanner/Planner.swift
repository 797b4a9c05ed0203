import FlexSPCore

/// Plans batches with any strategy and returns the plan document, timed and bounded.
///
///     let planner = Planner()
///     let batch = try Batch(lengths: [4_096, 1_024, 512], costModel: model)
///     let plan = try await planner.plan(batch, strategy: .flexsp)
///     plan.estStepMS, plan.lowerBoundMS, plan.solver.wallMS
///
/// Work that does not depend on other work runs side by side on up to `threads` cores with
/// structured concurrency, within one budget of `threads` (`Parallel`): flexsp's candidate
/// splits and seeds, the blocks of a packing on a large cluster, the repacking of separate
/// micro-batches, and the thorough lower bound beside the solve. Results are gathered in a fixed
/// order, so the plan is the same for every thread count.
public struct Planner: Sendable {
    /// Wall-clock budget of the `milp` strategy per batch.
    public var milpTimeLimitSeconds: Double
    /// Buckets per micro-batch for `milp`.
    public var bucketCount: Int
    /// For `static` without a degree: the longest sequence of the whole dataset, so that every
    /// batch uses the same degree. Nil: the batch's own longest.
    public var datasetLongest: Int?
    /// Which lower bound plans state (`LowerBound`); its time counts in the plan's wall time.
    public var bound: BoundMode
    /// The most planning tasks that run at once (`--threads`); at least 1.
    public var threads: Int

    /// All the cores this process may use: the default of `threads`.
    public static var allCores: Int { Parallel.allCores }

    public init(milpTimeLimitSeconds: Double = 10, bucketCount: Int = Bucketing.defaultCount, datasetLongest: Int? = nil,
                bound: BoundMode = .quick, threads: Int = Planner.allCores) {
        self.milpTimeLimitSeconds = milpTimeLimitSeconds
        self.bucketCount = bucketCount
        self.datasetLongest = datasetLongest
        self.bound = bound
        self.threads = max(1, threads)
    }

    /// The static degree `static` (without `:D`) resolves to for this batch.
    public func staticDegree(for batch: Batch) throws(PlanningError) -> Int {
        let longest = max(datasetLongest ?? 0, batch.lengths[0])
        guard let degree = batch.costModel.minimumDegree(length: longest) else {
            let largest = batch.costModel.degrees.last ?? 1
            throw .sequenceTooLong(id: batch.ids[0], length: longest,
                                   capacity: batch.costModel.tokenCapacity(degree: largest), degree: largest,
                                   worldSize: batch.costModel.worldSize)
        }
        return degree
    }

    /// Plans the batch with a strategy: the plan document with its estimates, the batch's lower
    /// bound and the solver's wall time.
    ///
    /// - Throws: the strategy's `PlanningError` when it finds no valid plan.
    public func plan(_ batch: Batch, strategy: Strategy) async throws(PlanningError) -> Plan {
        try await Parallel.withThreads(threads) { () async throws(PlanningError) in try await planWithinBudget(batch, strategy: strategy) }
    }

    private func planWithinBudget(_ batch: Batch, strategy: Strategy) async throws(PlanningError) -> Plan {
        let clock = ContinuousClock()
        let started = clock.now
        let mode = bound
        // The thorough bound (LPs) needs only the batch: when a thread is free it is computed
        // beside the solve, on that thread (the quick one costs next to nothing).
        let budget = Parallel.budget
        let beside = mode == .thorough && budget?.take() == true
        async let besideSolve: Double? = beside ? Self.boundBeside(batch, mode: mode, budget: budget) : nil
        let solution: Solution
        var resolved = strategy
        switch strategy {
        case .flexsp:
            solution = try await FlexSPSolver(threads: threads).solve(batch)
        case .milp:
            solution = try await MILPSolver(timeLimitSeconds: milpTimeLimitSeconds, bucketCount: bucketCount).solve(batch)
        case .batchAdaptive:
            solution = try await BatchAdaptiveSolver(threads: threads).solve(batch)
        case .staticDegree(let degree):
            let d: Int
            if let degree { d = degree } else { d = try staticDegree(for: batch) }
            resolved = .staticDegree(d)
            solution = try StaticSolver(degree: d).solve(batch)
        case .megatronDCP:
            solution = try MegatronDCPSolver().solve(batch)
        }
        let bound: Double
        if let computed = await besideSolve { bound = computed } else { bound = LowerBound.stepTime(batch, mode: mode) }
        let wall = (clock.now - started).seconds * 1000
        let plan = Plan(strategy: resolved.description, costModel: batch.costModel, sequences: batch.sequences,
                    schedule: solution.schedule, lowerBoundMS: bound,
                    solver: .init(name: strategy.description, wallMS: wall))
        // A plan document cannot carry infinities: refuse rather than write one.
        guard plan.estStepMS.isFinite, plan.lowerBoundMS.isFinite else { throw .estimateOverflow }
        return plan
    }

    /// The bound computed on a thread taken from `budget`, given back when done.
    private static func boundBeside(_ batch: Batch, mode: BoundMode, budget: Parallel.Budget?) async -> Double {
        defer { budget?.give() }
        return LowerBound.stepTime(batch, mode: mode)
    }
}
