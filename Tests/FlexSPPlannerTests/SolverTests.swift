import FlexSPCore
import Foundation
import Testing
@testable import FlexSPPlanner

/// Our solver against exact optima on tiny instances (8 GPUs, up to 8 sequences).
@Suite struct SolverTests {
    /// 8 GPUs of the paper's cluster with gpt-7b: about 3,270 tokens per GPU, so long sequences
    /// need groups of 2 to 8.
    let model = try! CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216, worldSize: 8)

    /// Long-tailed lengths: mostly short, some needing several GPUs.
    func instance(seed: Int) -> [Int] {
        var rng = SplitMix(state: UInt64(seed) &* 7919)
        let k = Int.random(in: 2 ... 8, using: &rng)
        return (0 ..< k).map { _ in
            let u = Double.random(in: 0 ..< 1, using: &rng)
            return max(64, Int(200 * pow(130.0, u * u)))  // 200 ... 26,000 tokens
        }
    }

    static let seeds = Array(0 ..< 60)

    @Test func lowerBoundNeverExceedsOptimumAndSolverNeverBeatsIt() async throws {
        var ratios: [Double] = []
        var optimal = 0
        for seed in Self.seeds {
            let lengths = instance(seed: seed)
            let batch = try Batch(lengths: lengths, costModel: model)
            let optimum = BruteForce.optimalStep(lengths: lengths, model: model)
            let solution = try await FlexSPSolver().solve(batch)
            let bound = LowerBound.stepTime(batch)
            #expect(bound <= optimum * (1 + 1e-9), "bound above optimum for \(lengths)")
            #expect(solution.stepTime >= optimum * (1 - 1e-9), "solver below the exact optimum for \(lengths): scoring bug")
            ratios.append(solution.stepTime / optimum)
            if solution.stepTime <= optimum * (1 + 1e-9) { optimal += 1 }
        }
        let mean = ratios.reduce(0, +) / Double(ratios.count)
        let worst = ratios.max()!
        // Near-optimal, not exact. Measured when written: 59 of 60 exactly optimal, mean ratio
        // 1.00002, worst 1.0011.
        #expect(optimal >= 59, "\(optimal) of \(Self.seeds.count) exactly optimal")
        #expect(mean <= 1.005, "mean ratio to optimum \(mean)")
        #expect(worst <= 1.02, "worst ratio to optimum \(worst)")
    }

    @Test func solutionsAreValidPlansWithTheStatedTime() async throws {
        let planner = Planner(milpTimeLimitSeconds: 2)
        for seed in Self.seeds.prefix(15) {
            let batch = try Batch(lengths: instance(seed: seed), costModel: model)
            for strategy in [Strategy.flexsp, .milp, .batchAdaptive, .staticDegree(nil), .staticDegree(8), .megatronDCP] {
                let plan = try await planner.plan(batch, strategy: strategy)
                #expect(Simulator.violations(in: plan).isEmpty, "\(strategy) on seed \(seed): \(Simulator.violations(in: plan))")
                #expect(plan.lowerBoundMS <= plan.estStepMS * (1 + 1e-9))
            }
        }
    }

    @Test func flexspIsExactOnAHandInstance() async throws {
        // One sequence that needs 4 GPUs and four short ones; inside one node all-to-all is
        // cheap, so the optimum is a single micro-batch.
        let lengths = [12_000, 3_000, 3_000, 3_000, 3_000]
        let batch = try Batch(lengths: lengths, costModel: model)
        let solution = try await FlexSPSolver().solve(batch)
        let optimum = BruteForce.optimalStep(lengths: lengths, model: model)
        #expect(abs(solution.stepTime - optimum) < 1e-6)
        #expect(solution.schedule.microBatches.count == 1)
    }
}
