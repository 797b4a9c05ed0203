import FlexSPCore

/// The paper's FlexSP-BatchAda: for each batch, the best single degree. Every usable degree is
/// planned with FlexSP's machinery restricted to that degree, and the fastest plan is kept.
public struct BatchAdaptiveSolver: Sendable {
    public init() {}

    public func solve(_ batch: Batch) throws(PlanningError) -> Solution {
        let model = batch.costModel
        var best: Solution?
        for degree in model.degrees where model.fits(tokens: batch.lengths[0], degree: degree) {
            guard let solution = try? FlexSPSolver(degrees: [degree]).solve(batch) else { continue }
            if solution.stepTime < best?.stepTime ?? .infinity { best = solution }
        }
        guard let best else { throw .infeasible(strategy: "batch-ada", reason: "no single degree holds the batch") }
        return best
    }
}
