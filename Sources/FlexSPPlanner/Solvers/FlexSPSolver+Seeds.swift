import FlexSPCore

/// Seeds: the cheap baselines' plans, as candidates.
extension FlexSPSolver {
    /// The baselines' plans: Megatron's dynamic CP, every static degree that holds the batch,
    /// and the best single degree (`batch-ada`).
    static func seeds(_ batch: Batch) -> [Candidate] {
        var schedules: [Schedule] = []
        if let dcp = try? MegatronDCPSolver().schedule(batch) { schedules.append(dcp) }
        for degree in batch.costModel.degrees where batch.costModel.fits(tokens: batch.lengths[0], degree: degree) {
            if let plan = try? StaticSolver(degree: degree).schedule(batch) { schedules.append(plan) }
        }
        if let ada = try? BatchAdaptiveSolver().schedule(batch) { schedules.append(ada) }
        return schedules.map { Candidate(schedule: $0) }
    }
}
