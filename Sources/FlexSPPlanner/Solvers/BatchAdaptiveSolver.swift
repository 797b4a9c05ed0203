import FlexSPCore

/// The paper's FlexSP-BatchAda: for each batch, the best single degree. Every usable degree is
/// planned with FlexSP's machinery restricted to that degree, and the fastest plan is kept.
public struct BatchAdaptiveSolver: Sendable {
    /// Packings run at once (see `FlexSPSolver.threads`).
    public var threads: Int

    public init(threads: Int = Planner.allCores) { self.threads = max(1, threads) }

    /// Plans the batch; throws `.infeasible` when no single degree holds it.
    public func solve(_ batch: Batch) async throws(PlanningError) -> Solution {
        Solution(batch: batch, schedule: try await schedule(batch))
    }

    /// The plan as groups of batch indices, per micro-batch. Degrees are tried in order of
    /// their lower bound; one whose bound is no better than the best plan so far is skipped.
    func schedule(_ batch: Batch) async throws(PlanningError) -> Schedule {
        try await Parallel.withThreads(threads) { () async throws(PlanningError) in try await bestDegree(batch) }
    }

    private func bestDegree(_ batch: Batch) async throws(PlanningError) -> Schedule {
        let model = batch.costModel
        let usable = model.degrees.filter { model.fits(tokens: batch.lengths[0], degree: $0) }
        var best: (time: Double, schedule: Schedule)?
        for (degree, bound) in usable.map({ ($0, Self.lowerBound(batch, degree: $0)) }).sorted(by: { $0.1 < $1.1 }) {
            if let best, bound >= best.time { break }
            guard let schedule = try? await FlexSPSolver(degrees: [degree], threads: threads).schedule(batch) else { continue }
            let time = schedule.stepTime(model: model) { batch.lengths[$0] }
            if time < best?.time ?? .infinity { best = (time, schedule) }
        }
        guard let best else { throw .infeasible(strategy: "batch-ada", reason: "no single degree holds the batch") }
        return best.schedule
    }

    /// The least step time of any plan whose groups all have `degree`: every micro-batch pays
    /// `beta1` and holds at most `N / degree` groups' tokens, and the GPU-time of the sequences
    /// is shared by at most `N` GPUs.
    static func lowerBound(_ batch: Batch, degree: Int) -> Double {
        let model = batch.costModel
        let perMicroBatch = (model.worldSize / degree) * model.tokenCapacity(degree: degree)
        let microBatches = (batch.totalTokens + perMicroBatch - 1) / perMicroBatch
        let work = batch.lengths.reduce(0.0) { $0 + model.sequenceWork(length: $1, degree: degree) }
        let longest = model.sequenceTime(length: batch.lengths[0], degree: degree)
        return Double(microBatches) * model.beta1 + max(work / Double(model.worldSize), longest)
    }
}
