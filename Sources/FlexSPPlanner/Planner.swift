import FlexSPCore

/// Plans batches with any strategy and returns the plan document, timed and bounded.
///
///     let planner = Planner()
///     let batch = try Batch(lengths: [4_096, 1_024, 512], costModel: model)
///     let plan = try planner.plan(batch, strategy: .flexsp)
///     plan.estStepMS, plan.lowerBoundMS, plan.solver.wallMS
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

    public init(milpTimeLimitSeconds: Double = 10, bucketCount: Int = Bucketing.defaultCount, datasetLongest: Int? = nil,
                bound: BoundMode = .quick) {
        self.milpTimeLimitSeconds = milpTimeLimitSeconds
        self.bucketCount = bucketCount
        self.datasetLongest = datasetLongest
        self.bound = bound
    }

    /// The static degree `static` (without `:D`) resolves to for this batch.
    public func staticDegree(for batch: Batch) throws(PlanningError) -> Int {
        let longest = max(datasetLongest ?? 0, batch.lengths[0])
        guard let degree = batch.costModel.minimumDegree(length: longest) else {
            let largest = batch.costModel.degrees.last ?? 1
            throw .sequenceTooLong(id: batch.ids[0], length: longest,
                                   capacity: batch.costModel.tokenCapacity(degree: largest), degree: largest)
        }
        return degree
    }

    /// Plans the batch with a strategy: the plan document with its estimates, the batch's lower
    /// bound and the solver's wall time.
    ///
    /// - Throws: the strategy's `PlanningError` when it finds no valid plan.
    public func plan(_ batch: Batch, strategy: Strategy) throws(PlanningError) -> Plan {
        let clock = ContinuousClock()
        let started = clock.now
        let solution: Solution
        var resolved = strategy
        switch strategy {
        case .flexsp:
            solution = try FlexSPSolver().solve(batch)
        case .milp:
            solution = try MILPSolver(timeLimitSeconds: milpTimeLimitSeconds, bucketCount: bucketCount).solve(batch)
        case .batchAdaptive:
            solution = try BatchAdaptiveSolver().solve(batch)
        case .staticDegree(let degree):
            let d: Int
            if let degree { d = degree } else { d = try staticDegree(for: batch) }
            resolved = .staticDegree(d)
            solution = try StaticSolver(degree: d).solve(batch)
        case .megatronDCP:
            solution = try MegatronDCPSolver().solve(batch)
        }
        let bound = LowerBound.stepTime(batch, mode: self.bound)
        let wall = (clock.now - started).seconds * 1000
        let plan = Plan(strategy: resolved.description, costModel: batch.costModel, sequences: batch.sequences,
                    schedule: solution.schedule, lowerBoundMS: bound,
                    solver: .init(name: strategy.description, wallMS: wall))
        // A plan document cannot carry infinities: refuse rather than write one.
        guard plan.estStepMS.isFinite, plan.lowerBoundMS.isFinite else { throw .estimateOverflow }
        return plan
    }
}
