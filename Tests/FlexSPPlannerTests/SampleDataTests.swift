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
    func everyStrategyPlansValidly(file: String) throws {
        let model = try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216)
        let data = try workload(file, model: model)
        let planner = Planner(milpTimeLimitSeconds: 1, datasetLongest: data.lengths.max())
        for step in 0 ..< 2 {
            let batch = try Batch(lengths: data.batch(step), costModel: model)
            var times: [String: Double] = [:]
            for strategy in [Strategy.flexsp, .milp, .batchAdaptive, .staticDegree(nil), .megatronDCP] {
                let plan = try planner.plan(batch, strategy: strategy)
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
