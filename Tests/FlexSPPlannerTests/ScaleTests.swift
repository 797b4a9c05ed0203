import FlexSPCore
import Foundation
import Testing
@testable import FlexSPPlanner

/// The planner at cluster scale (issue 17): the same plan whatever the core count, a few hundred
/// sequences on thousands of GPUs planned validly and no slower than the baselines, and the
/// batch limit.
@Suite struct ScaleTests {
    /// The first `count` lengths of a bundled sample on `worldSize` GPUs, padded by the reference rule.
    static func batch(count: Int, worldSize: Int, file: String = "wikipedia-sample.txt") throws -> Batch {
        let model = try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216, worldSize: worldSize)
        let url = SampleDataTests.repository.appendingPathComponent("data/lengths/\(file)")
        let lengths = try LengthFile.parse(String(contentsOf: url, encoding: .utf8), source: file)
        let data = try Workload(lengths: lengths, source: file, batchSize: count,
                                rule: .reference(maxContext: 393_216, worldSize: worldSize))
        return try Batch(lengths: data.batch(0), costModel: model)
    }

    /// Each micro-batch's groups as (degree, sequence ids): what a plan decides.
    static func decisions(_ plan: Plan) -> [[[Int]]] {
        plan.microBatches.map { $0.groups.map { [$0.degree] + $0.sequenceIDs } }
    }

    /// One thread and four give the same plan: on 64 GPUs (every candidate and seed in
    /// parallel) and on 2,048 (packed in blocks), with the bound beside the solve.
    @Test(arguments: [(512, 64), (300, 2_048)])
    func samePlanOnOneThreadOrMany(count: Int, worldSize: Int) async throws {
        let batch = try Self.batch(count: count, worldSize: worldSize)
        let one = try await Planner(threads: 1).plan(batch, strategy: .flexsp)
        let many = try await Planner(threads: 4).plan(batch, strategy: .flexsp)
        #expect(Self.decisions(one) == Self.decisions(many))
        #expect(one.lowerBoundMS == many.lowerBoundMS)
        let again = try await Planner(threads: 4).plan(batch, strategy: .flexsp)
        #expect(Self.decisions(again) == Self.decisions(many))
    }

    /// A few hundred sequences on 4,096 GPUs: a valid plan, no slower than any baseline, and no
    /// group across blocks unless a baseline's plan won.
    @Test(arguments: ["wikipedia-sample.txt", "github_code-sample.txt"])
    func aFewHundredSequencesOnThousandsOfGPUs(file: String) async throws {
        let batch = try Self.batch(count: 400, worldSize: 4_096, file: file)
        let planner = Planner(bound: .quick)
        let ours = try await planner.plan(batch, strategy: .flexsp)
        #expect(Simulator.violations(in: ours).isEmpty)
        #expect(ours.sequences.count == 400)
        for strategy in [Strategy.megatronDCP, .batchAdaptive, .staticDegree(nil)] {
            let theirs = try await planner.plan(batch, strategy: strategy)
            #expect(Simulator.violations(in: theirs).isEmpty)
            #expect(ours.estStepMS <= theirs.estStepMS * (1 + 1e-9), "\(file): flexsp \(ours.estStepMS) ms > \(strategy) \(theirs.estStepMS) ms")
        }
        #expect(ours.lowerBoundMS <= ours.estStepMS)
    }

    /// Block packing keeps every group inside one block of whole nodes.
    @Test func blocksHoldWholeGroups() async throws {
        let batch = try Self.batch(count: 200, worldSize: 2_048)
        let packer = GroupPacker(model: batch.costModel, degrees: batch.costModel.degrees)
        let inner = try #require(packer.blockPacker())
        #expect(inner.model.worldSize == 512 && inner.model.worldSize % batch.costModel.gpusPerNode == 0)
        let packing = try #require(await packer.pack(lengths: batch.lengths, thorough: false))
        #expect(packing.groups.reduce(0) { $0 + $1.degree } <= 2_048)
        #expect(Set(packing.groups.flatMap(\.members)).count == batch.count)
        // 64 GPUs: packed whole.
        let small = GroupPacker(model: try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216),
                                degrees: [1, 2, 4, 8, 16, 32, 64])
        #expect(small.blockPacker() == nil)
    }

    /// 65,536 sequences are a batch; one more is refused before any planning.
    @Test func batchLimit() throws {
        let model = try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216, worldSize: 16_384)
        #expect(Limits.maxSequences == 65_536)
        let batch = try Batch(lengths: Array(repeating: 32_768, count: 65_536), costModel: model)
        #expect(batch.count == 65_536)
        #expect(throws: PlanningError.tooManySequences(65_537)) {
            try Batch(lengths: Array(repeating: 32_768, count: 65_537), costModel: model)
        }
    }
}
