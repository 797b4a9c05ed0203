import FlexSPCore

/// Scores strategies over the same batches with the same simulator: the engine of
/// `flexsp compare` and of the benchmarks.
public struct Comparison: Sendable {
    /// One strategy's results over all batches.
    public struct Result: Sendable {
        public var strategy: String
        /// Simulated step time of each batch (ms).
        public var stepMS: [Double]
        /// Solver wall time of each batch (ms).
        public var solverMS: [Double]
        /// Gap to the batch's lower bound, per batch.
        public var gaps: [Double]
        /// Each batch's plan shape (group degrees per micro-batch).
        public var shapes: [[[Int]]]

        public var meanStepMS: Double { stepMS.reduce(0, +) / Double(max(1, stepMS.count)) }
        public var meanGap: Double { gaps.reduce(0, +) / Double(max(1, gaps.count)) }
        public var maxGap: Double { gaps.max() ?? 0 }
        public var solverP50: Double { Self.percentile(solverMS, 0.50) }
        public var solverP99: Double { Self.percentile(solverMS, 0.99) }

        /// Nearest-rank percentile.
        public static func percentile(_ values: [Double], _ p: Double) -> Double {
            guard !values.isEmpty else { return 0 }
            let sorted = values.sorted()
            let rank = Int((p * Double(sorted.count)).rounded(.up))
            return sorted[min(sorted.count - 1, max(0, rank - 1))]
        }
    }

    public var planner: Planner

    public init(planner: Planner) { self.planner = planner }

    /// Plans every batch with every strategy, checks each plan with the simulator, and
    /// reports per strategy. `progress` is told about each batch as it finishes.
    ///
    /// - Throws: `PlanningError` if a strategy cannot plan a batch, or if a plan breaks a rule
    ///   (a bug in that strategy, reported with the broken rule).
    public func run(
        batches: [[Int]], costModel: CostModel, strategies: [Strategy], progress: (String) -> Void = { _ in }
    ) async throws(PlanningError) -> [Result] {
        var results: [Result] = []
        for strategy in strategies {
            var result = Result(strategy: strategy.description, stepMS: [], solverMS: [], gaps: [], shapes: [])
            for (index, lengths) in batches.enumerated() {
                let plan = try await planner.plan(Batch(lengths: lengths, costModel: costModel), strategy: strategy)
                if let broken = Simulator.violations(in: plan).first {
                    throw .infeasible(strategy: strategy.description, reason: "batch \(index): invalid plan: \(broken)")
                }
                result.stepMS.append(Simulator.stepTime(of: plan))
                result.solverMS.append(plan.solver.wallMS)
                result.gaps.append(plan.gap)
                result.shapes.append(plan.shape)
                progress("\(strategy): batch \(index + 1)/\(batches.count) \(Int(plan.estStepMS)) ms, solved in \(Int(plan.solver.wallMS)) ms")
            }
            if case .staticDegree(nil) = strategy, let first = result.shapes.first?.first?.first {
                result.strategy = "static:\(first)"
            }
            results.append(result)
        }
        return results
    }
}

extension Comparison {
    /// What a comparison reports: the strategies asked for, and the references their speedups
    /// are measured against.
    public struct Outcome: Sendable {
        /// The results of the strategies asked for, in their order.
        public var results: [Result]
        /// `static` (the smallest degree that holds the dataset's longest sequence), which every
        /// speedup is measured against.
        public var baseline: Result
        /// `batch-ada`'s results, if it was asked for: the second reference.
        public var batchAdaptive: Result?
    }

    /// Plans every batch with every strategy, as `run` does, and also with `static` when it is
    /// not among them: speedups are always measured against it, so it is planned even when not
    /// asked for (and then left out of `results`).
    ///
    /// - Throws: what `run` throws.
    public func compare(
        batches: [[Int]], costModel: CostModel, strategies: [Strategy], progress: (String) -> Void = { _ in }
    ) async throws(PlanningError) -> Outcome {
        let staticIndex = strategies.firstIndex { if case .staticDegree(nil) = $0 { true } else { false } }
        let planned = staticIndex == nil ? strategies + [.staticDegree(nil)] : strategies
        let results = try await run(batches: batches, costModel: costModel, strategies: planned, progress: progress)
        return Outcome(
            results: staticIndex == nil ? Array(results.dropLast()) : results,
            baseline: results[staticIndex ?? results.count - 1],
            batchAdaptive: results.first { $0.strategy == Strategy.batchAdaptive.description })
    }
}
