import FlexSPCore
import Foundation
import Testing
@testable import FlexSPPlanner

/// Every strategy on real batches of the bundled length samples: plans pass the validator,
/// and flexsp is at least as fast as every other strategy.
@Suite struct SampleDataTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    func workload(_ name: String, model: CostModel) throws -> Workload {
        let url = Self.repository.appendingPathComponent("data/lengths/\(name)")
        let lengths = try LengthFile.parse(String(contentsOf: url, encoding: .utf8), source: name)
        return try Workload(lengths: lengths, source: name, batchSize: 512,
                            rule: .reference(maxContext: 393_216, worldSize: model.worldSize))
    }

    @Test(arguments: ["wikipedia-sample.txt", "github_code-sample.txt"])
    func everyStrategyPlansValidly(file: String) async throws {
        let model = try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216)
        let data = try workload(file, model: model)
        let planner = Planner(milpTimeLimitSeconds: 1, datasetLongest: data.lengths.max())
        for step in 0 ..< 2 {
            let batch = try Batch(lengths: data.batch(step), costModel: model)
            var times: [String: Double] = [:]
            for strategy in [Strategy.flexsp, .milp, .batchAdaptive, .staticDegree(nil), .megatronDCP] {
                let plan = try await planner.plan(batch, strategy: strategy)
                let violations = Simulator.violations(in: plan)
                #expect(violations.isEmpty, "\(file) step \(step) \(strategy): \(violations.prefix(3))")
                #expect(plan.sequences.count == 512)
                times[strategy.description] = plan.estStepMS
            }
            let ours = times["flexsp"]!
            for (name, time) in times { #expect(ours <= time * (1 + 1e-9), "\(file) step \(step): flexsp \(ours) > \(name) \(time)") }
        }
    }
}

/// `flexsp compare`'s rule, in the library: speedups are measured against `static`, planned
/// whether or not it was asked for.
@Suite struct ComparisonTests {
    let model = try! CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216)
    let batches = [[200_000, 90_000, 8_000, 4_000, 1_000, 500], [30_000, 20_000, 10_000, 7_000]]

    @Test func staticIsPlannedWhenNotAskedForAndLeftOutOfTheResults() async throws {
        let comparison = Comparison(planner: Planner(datasetLongest: 200_000))
        let outcome = try await comparison.compare(batches: batches, costModel: model, strategies: [.flexsp, .batchAdaptive])
        #expect(outcome.results.map(\.strategy) == ["flexsp", "batch-ada"])
        // The dataset's longest sequence fixes the degree.
        #expect(outcome.baseline.strategy == "static:\(model.minimumDegree(length: 200_000)!)")
        #expect(outcome.baseline.stepMS.count == batches.count)
        #expect(outcome.batchAdaptive?.stepMS == outcome.results[1].stepMS)
    }

    @Test func staticAskedForIsTheBaselineAndStaysInPlace() async throws {
        let comparison = Comparison(planner: Planner(datasetLongest: 200_000))
        let outcome = try await comparison.compare(batches: batches, costModel: model, strategies: [.staticDegree(nil), .flexsp])
        #expect(outcome.results.map(\.strategy) == [outcome.baseline.strategy, "flexsp"])
        #expect(outcome.results[0].stepMS == outcome.baseline.stepMS)
        #expect(outcome.batchAdaptive == nil)
        #expect(outcome.results[1].meanStepMS <= outcome.baseline.meanStepMS * (1 + 1e-9))
    }
}
