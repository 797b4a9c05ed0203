import FlexSPCore
import Foundation
import Testing
@testable import FlexSPPlanner

/// `megatron-dcp` is Megatron-Core's packing-aware dynamic-CP scheduler: the cases of its own
/// unit tests, and the step times the real scheduler's plans score on the paper's workload.
@Suite struct MegatronDCPTests {
    @Test func aShortSequenceJoinsALargerGroupWhenThatLowersTheLoad() throws {
        // Megatron's test: 2 ranks of 4,096 tokens, lengths 6,144 and 2,048. The short one could
        // open a group of 1 on no free rank; it joins the group of 2 instead.
        let (groups, leftovers) = try MegatronDCPSolver.nextMicroBatch(
            [0, 1], lengths: [6_144, 2_048], sizes: [1, 2], worldSize: 2, perRank: 4_096)
        #expect(leftovers.isEmpty)
        #expect(groups.map(\.size) == [2])
        #expect(groups.map(\.members) == [[0, 1]])
    }

    @Test func idleRanksAreFilledByDoublingTheSmallestGroup() throws {
        let (groups, leftovers) = try MegatronDCPSolver.nextMicroBatch(
            [0], lengths: [100], sizes: [1, 2, 4], worldSize: 4, perRank: 100)
        #expect(leftovers.isEmpty)
        #expect(groups.map(\.size) == [4])
    }

    @Test func whatExceedsTheWorkloadCapWaitsForTheNextMicroBatch() throws {
        // Two sequences that each fill a rank: the second would double the busiest rank's load
        // (past the 5% cap) if it joined; it opens its own group on the free rank instead, and a
        // third, with no free rank left, is carried over.
        let (groups, leftovers) = try MegatronDCPSolver.nextMicroBatch(
            [0, 1, 2], lengths: [100, 100, 100], sizes: [1, 2], worldSize: 2, perRank: 100)
        #expect(groups.map(\.members) == [[0], [1]])
        #expect(leftovers == [2])
    }

    /// Step times of the real scheduler's plans (issue 10), gpt-7b / 384K on 64 A100s, batches of
    /// 512 from the head of `wikipedia.txt` (the bundled sample holds the same lines).
    @Test func matchesMegatronCoreOnWikipedia() async throws {
        let targets: [Int: Double] = [0: 3_233.6, 1: 7_674.4, 6: 6_244.8, 8: 13_558.6]
        let model = try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216)
        let url = SampleDataTests.repository.appendingPathComponent("data/lengths/wikipedia-sample.txt")
        let lengths = try LengthFile.parse(String(contentsOf: url, encoding: .utf8), source: "wikipedia-sample.txt")
        let data = try Workload(lengths: lengths, source: "wikipedia", batchSize: 512,
                                rule: .reference(maxContext: 393_216, worldSize: 64))
        let planner = Planner()
        for (step, target) in targets {
            let plan = try await planner.plan(try Batch(lengths: data.batch(step), costModel: model), strategy: .megatronDCP)
            #expect(Simulator.violations(in: plan).isEmpty)
            #expect(abs(plan.estStepMS - target) <= 0.001 * target, "batch \(step): \(plan.estStepMS) ms, Megatron-Core \(target) ms")
        }
    }
}
