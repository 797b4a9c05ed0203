import FlexSPCore
import Foundation
import Testing
@testable import FlexSPPlanner

@Suite struct PlanServiceTests {
    let model = try! CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216, worldSize: 8)
    var service: PlanService { PlanService(costModel: model, strategy: .flexsp, planner: Planner(milpTimeLimitSeconds: 1)) }

    func reply(_ line: String) async throws -> [String: Any] {
        let data = await service.respond(to: Data(line.utf8))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    @Test func aRequestGetsAValidPlanWithItsID() async throws {
        let data = await service.respond(to: Data(#"{"id": 7, "lengths": [20000, 3000, 500, 500, 1]}"#.utf8))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["id"] as? Int == 7)
        let plan = try Plan(json: data)
        #expect(Simulator.violations(in: plan).isEmpty)
        #expect(plan.sequences.map(\.length) == [20000, 3000, 500, 500, 1])  // ids in request order, as given
        #expect(plan.sequences.map(\.id) == [0, 1, 2, 3, 4])
    }

    @Test func requestsMayChooseStrategyAndCostModel() async throws {
        let other = try CostModel.preset(model: "gpt-13b", cluster: "a100-40g-8x8", maxContext: 196_608, worldSize: 16)
        let document = String(decoding: other.jsonData(), as: UTF8.self)
        let data = await service.respond(to: Data(#"{"id": "b", "lengths": [4096, 4096], "strategy": "static:2", "cost_model": \#(document)}"#.utf8))
        let plan = try Plan(json: data)
        #expect(plan.worldSize == 16)
        #expect(plan.strategy == "static:2")
        #expect(plan.microBatches.allSatisfy { $0.groups.allSatisfy { $0.degree == 2 } })
    }

    @Test func badRequestsGetErrorsThatSayWhy() async throws {
        let cases: [(String, String)] = [
            ("garbage", "not valid JSON"),
            ("[1, 2]", "must be a JSON object"),
            (#"{"id": 1}"#, "missing \"lengths\""),
            (#"{"id": 1, "lengths": "long"}"#, "must be a list"),
            (#"{"id": 1, "lengths": [100, -5]}"#, "lengths[1] is -5"),
            (#"{"id": 1, "lengths": [100, true]}"#, "lengths[1]"),
            (#"{"id": 1, "lengths": [100.5]}"#, "lengths[0]"),
            (#"{"id": 1, "lengths": []}"#, "no sequences"),
            (#"{"id": 1, "lengths": [900000]}"#, "sequence 0 has 900000 tokens"),
            (#"{"id": 1, "lengths": [100], "strategy": "fastest"}"#, "unknown strategy 'fastest'"),
            (#"{"id": 1, "lengths": [100], "cost_model": {"version": 1}}"#, "is missing"),
        ]
        for (request, expected) in cases {
            let object = try await reply(request)
            let error = try #require(object["error"] as? String, "no error for \(request)")
            #expect(error.contains(expected), "\(request) -> \(error)")
        }
        #expect(try await reply(#"{"id": 9, "lengths": [-1]}"#)["id"] as? Int == 9)
        // And the service still answers good requests.
        #expect(try await reply(#"{"id": 2, "lengths": [100]}"#)["micro_batches"] != nil)
    }
}

@Suite struct PlanningErrorTests {
    let model = try! CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216)

    @Test func nonPositiveLengthIsNamed() {
        #expect(throws: PlanningError.nonPositiveLength(id: 1, length: 0)) {
            try Batch(lengths: [100, 0], costModel: model)
        }
    }

    @Test func tooLongSequenceIsNamed() {
        #expect(throws: PlanningError.sequenceTooLong(id: 2, length: 500_000, capacity: 410_108, degree: 64, worldSize: 64)) {
            try Batch(lengths: [100, 200, 500_000], costModel: model)
        }
    }

    @Test func staticDegreeThatCannotHoldTheBatch() async throws {
        let batch = try Batch(lengths: [20_000, 100], costModel: model)
        await #expect(throws: PlanningError.self) { try await Planner().plan(batch, strategy: .staticDegree(1)) }
        await #expect(throws: PlanningError.invalidStaticDegree(3, allowed: model.degrees)) {
            try await Planner().plan(batch, strategy: .staticDegree(3))
        }
    }

    @Test func strategyNames() throws {
        #expect(try Strategy(parsing: "static:16") == .staticDegree(16))
        #expect(try Strategy(parsing: "batch-ada") == .batchAdaptive)
        #expect(throws: PlanningError.unknownStrategy("static:x")) { try Strategy(parsing: "static:x") }
    }
}

@Suite struct PlanServiceHardeningTests {
    let model = try! CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216, worldSize: 8)
    var service: PlanService { PlanService(costModel: model, strategy: .flexsp, planner: Planner(milpTimeLimitSeconds: 1)) }

    func error(_ line: String) async throws -> String {
        let data = await service.respond(to: Data(line.utf8))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try #require(object["error"] as? String, "no error for \(line)")
    }

    @Test func hostileRequestsAreRefusedWithTheReason() async throws {
        let cases: [(String, String)] = [
            (#"{"id":1,"lengths":[4096,],}"#, "line 1, column 25: expected a value"),
            (#"{"id":1,"lengths":[4096],"lengths":[1]}"#, "duplicate key 'lengths'"),
            (#"{"id":1,"lengths":[1e400]}"#, "out of range"),
            (#"{"id":1,"lengths":[1e300]}"#, "over the limit"),
            (#"{"id":1,"lengths":[1099511627777]}"#, "over the limit of 1099511627776"),
            (#"{"id":[1],"lengths":[4096]}"#, "\"id\" must be"),
            (#"{"id":{"a":1},"lengths":[4096]}"#, "\"id\" must be"),
            (#"{"id":1,"lengths":[4096],"stratgy":"milp"}"#, "unknown field 'stratgy'"),
            (#"{"id":1,"lengths":[4096],"strategy":"\u001b[2J"}"#, "unknown strategy '\\u{1b}[2J'"),
            (#"{"id":1,"lengths":[4096],"cost_model":[1]}"#, "must be an object"),
            (#"{"id":1,"lengths":[4096],"cost_model":{"version":1,"world_size":64.5}}"#, "'world_size' should be an integer"),
            (#"{"id":1,"lengths":[4096],"strategy":"static:4611686018427387904"}"#, "static:4611686018427387904"),
            ("{\"id\":1,\"lengths\":[" + Array(repeating: "1", count: Limits.maxSequences + 1).joined(separator: ",") + "]}", "more than the limit of 65536"),
        ]
        for (line, expected) in cases {
            let message = try await error(line)
            #expect(message.contains(expected), "\(line.prefix(80)) -> \(message)")
            #expect(!message.contains("NSCocoaErrorDomain") && !message.unicodeScalars.contains { $0.value < 0x20 })
        }
    }

    @Test func hugeCostModelsPlanOrAreRefusedWithoutTrapping() async throws {
        var hugeBudget = model
        hugeBudget.memoryBudgetMB = 1e20
        var overflow = model
        overflow.alpha1 = 1e305
        for (document, lengths) in [(hugeBudget, "[300000, 4096]"), (overflow, "[4096]")] {
            let line = #"{"id":1,"lengths":\#(lengths),"cost_model":\#(String(decoding: document.jsonData(), as: UTF8.self))}"#
            let data = await service.respond(to: Data(line.utf8))
            let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            if let message = object["error"] as? String {
                #expect(message.contains("too large to represent"), "\(message)")
            } else {
                #expect(Simulator.violations(in: try Plan(json: data)).isEmpty)
            }
        }
    }
}
