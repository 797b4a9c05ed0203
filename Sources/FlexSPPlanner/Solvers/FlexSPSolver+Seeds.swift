import FlexSPCore

/// Seeds: the cheap baselines' plans, as candidates.
extension FlexSPSolver {
    /// The baselines' plans: Megatron's dynamic CP, every static degree that holds the batch,
    /// and the best single degree (`batch-ada`), in that order. The greedy ones are planned
    /// side by side; `batch-ada`, the dearest, after them with every thread to itself (so that
    /// no more than `threads` pieces ever run at once).
    static func seeds(_ batch: Batch, threads: Int) async -> [Candidate] {
        let statics = batch.costModel.degrees.filter { batch.costModel.fits(tokens: batch.lengths[0], degree: $0) }
        var schedules = await Parallel.map(statics.count + 1, threads: threads) { job -> Schedule? in
            job == 0 ? try? MegatronDCPSolver().schedule(batch) : try? StaticSolver(degree: statics[job - 1]).schedule(batch)
        }
        schedules.append(try? await BatchAdaptiveSolver(threads: threads).schedule(batch))
        return schedules.compactMap { $0 }.map { Candidate(schedule: $0) }
    }
}
