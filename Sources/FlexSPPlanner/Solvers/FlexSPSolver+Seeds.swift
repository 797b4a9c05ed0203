import FlexSPCore

/// Seeds: the cheap baselines' plans, as candidates.
extension FlexSPSolver {
    /// The baselines' plans: Megatron's dynamic CP, every static degree that holds the batch,
    /// and the best single degree (`batch-ada`), planned side by side (`batch-ada`, the
    /// dearest, first), in that order.
    static func seeds(_ batch: Batch, threads: Int) async -> [Candidate] {
        let statics = batch.costModel.degrees.filter { batch.costModel.fits(tokens: batch.lengths[0], degree: $0) }
        let schedules = await Parallel.map(statics.count + 2, threads: threads) { job -> Schedule? in
            switch job {
            case 0: try? await BatchAdaptiveSolver(threads: threads).schedule(batch)
            case 1: try? MegatronDCPSolver().schedule(batch)
            default: try? StaticSolver(degree: statics[job - 2]).schedule(batch)
            }
        }
        // The order the candidates had when planned one after another.
        let ordered = [schedules[1]] + schedules.dropFirst(2) + [schedules[0]]
        return ordered.compactMap { $0 }.map { Candidate(schedule: $0) }
    }
}
