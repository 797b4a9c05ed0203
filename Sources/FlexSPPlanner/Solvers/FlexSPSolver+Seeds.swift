import FlexSPCore

/// Seeds: the cheap baselines' plans, as candidates.
extension FlexSPSolver {
    /// The baselines' plans: Megatron's dynamic CP, every static degree that holds the batch,
    /// and the best single degree (`batch-ada`), in that order. The greedy ones are planned
    /// side by side; `batch-ada`, the dearest, after them with every thread of the budget.
    static func seeds(_ batch: Batch) async -> [Candidate] {
        let statics = batch.costModel.degrees.filter { batch.costModel.fits(tokens: batch.lengths[0], degree: $0) }
        var schedules = await Parallel.map(statics.count + 1) { job -> Schedule? in
            job == 0 ? try? MegatronDCPSolver().schedule(batch) : try? StaticSolver(degree: statics[job - 1]).schedule(batch)
        }
        schedules.append(try? await BatchAdaptiveSolver().schedule(batch))
        return schedules.compactMap { $0 }.map { Candidate(schedule: $0) }
    }
}
