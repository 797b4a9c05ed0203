import FlexSPCore
import Testing
@testable import FlexSPPlanner

/// Batches that need more micro-batches than the time-balanced split has chunk boundaries
/// (more than 1,024 sequences, most of them a micro-batch each): issue 11, item 1.
@Suite struct ManyMicroBatchesTests {
    @Test func timeBalancedAnswersEveryRequestedCount() throws {
        let model = try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216, worldSize: 8)
        let lengths = [Int](repeating: 20_000, count: 20)
        let figures = MicroBatchSplit.Figures(lengths: lengths, model: model, degrees: model.degrees)
        // A grid of 4 gives 5 boundaries, so at most 4 chunks; counts above are nil, not absent.
        let result = MicroBatchSplit.timeBalanced(figures, maxCount: 12, grid: 4)
        #expect(result.count == 13)
        #expect(result[5 ... 12].allSatisfy { $0 == nil })
    }

    @Test func everyStrategyPlansMoreThan1024SequencesThatEachFillTheCluster() async throws {
        // 2 GPUs of 10,000 tokens each: every 15,000-token sequence is a micro-batch of its own.
        let model = CostModel(
            name: "two-gpus", worldSize: 2, gpusPerNode: 2, memoryBudgetMB: 1_000, modelStatesMB: 0,
            activationMBPerToken: 0.1, alpha1: 1e-6, alpha2: 1e-3, beta1: 1, a2aMBPerToken: 0.1,
            a2aBandwidthGBps: [2: 100], maxDegree: 2)
        let batch = try Batch(lengths: [Int](repeating: 15_000, count: 1_025), costModel: model)
        for strategy in [Strategy.flexsp, .batchAdaptive, .staticDegree(nil), .megatronDCP] {
            let plan = try await Planner().plan(batch, strategy: strategy)
            #expect(Simulator.violations(in: plan).isEmpty, "\(strategy)")
            #expect(plan.microBatches.count == 1_025, "\(strategy)")
        }
    }
}
