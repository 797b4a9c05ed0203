import Foundation
import Testing
@testable import FlexSPCore

@Suite struct SimulatorTests {
    let model = try! CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216, worldSize: 8)
    let sequences = [4_000, 9_000, 500, 700, 20_000].enumerated().map { Plan.Sequence(id: $0.offset, length: $0.element) }

    /// Two micro-batches: <4,2,1,1> and <8>.
    var valid: Plan {
        Plan(strategy: "test", costModel: model, sequences: sequences,
             schedule: Schedule([[.init(degree: 1, members: [2]), .init(degree: 4, members: [1]), .init(degree: 2, members: [0]), .init(degree: 1, members: [3])], [.init(degree: 8, members: [4])]]),
             lowerBoundMS: 0, solver: .init(name: "test", wallMS: 0))
    }

    @Test func aValidPlanPassesAndIsScored() throws {
        let plan = valid
        #expect(Simulator.violations(in: plan).isEmpty)
        // Placement: largest first on aligned ranks.
        #expect(plan.microBatches[0].groups.map(\.degree) == [4, 2, 1, 1])
        #expect(plan.microBatches[0].groups.map(\.firstRank) == [0, 4, 6, 7])
        let expected = max(model.groupTime(lengths: [9_000], degree: 4), model.groupTime(lengths: [4_000], degree: 2),
                           model.groupTime(lengths: [500], degree: 1), model.groupTime(lengths: [700], degree: 1))
            + model.groupTime(lengths: [20_000], degree: 8)
        #expect(abs(Simulator.stepTime(of: plan) - expected) < 1e-9)
        #expect(abs(plan.estStepMS - expected) < 1e-9)
        // The document survives a round trip and still validates.
        let decoded = try Plan(json: plan.jsonData())
        #expect(decoded == plan)
        #expect(Simulator.violations(in: decoded).isEmpty)
    }

    @Test func everyBrokenRuleIsNamed() {
        func check(_ change: (inout Plan) -> Void, _ expected: @escaping (PlanViolation) -> Bool) {
            var plan = valid
            change(&plan)
            let found = Simulator.violations(in: plan)
            let matched = found.contains(where: expected)
            #expect(matched, "expected violation not found in \(found)")
        }
        check({ $0.microBatches[0].groups[1].firstRank = 3 }) {
            if case .misalignedGroup(let at, 3, 2, 8) = $0 { at == GroupLocation(microBatch: 0, group: 1) } else { false }
        }
        check({ $0.microBatches[0].groups[2].firstRank = 5 }) {
            if case .overlappingGroups(0, _, _) = $0 { true } else { false }
        }
        check({ $0.microBatches[0].groups[0].degree = 3 }) {
            if case .badDegree(_, 3, _) = $0 { true } else { false }
        }
        check({ $0.microBatches[1].groups[0].sequenceIDs = [4, 2] }) {
            if case .sequencePlacedTwice(2, _, _) = $0 { true } else { false }
        }
        check({ $0.microBatches[0].groups[3].sequenceIDs = [] }) {
            if case .sequenceNotPlaced(3) = $0 { true } else { false }
        }
        check({ $0.microBatches[0].groups[3].sequenceIDs = [3, 42] }) {
            if case .unknownSequence(_, 42) = $0 { true } else { false }
        }
        check({ $0.microBatches[1].groups[0].degree = 1; $0.microBatches[1].groups[0].firstRank = 0 }) {
            if case .outOfMemory = $0 { true } else { false }
        }
        check({ $0.microBatches[0].groups[0].tokens = 1 }) {
            if case .tokenCountMismatch(_, 1, 9_000) = $0 { true } else { false }
        }
        check({ $0.estStepMS = 1 }) {
            if case .estimateMismatch(.step, 1, _) = $0 { true } else { false }
        }
        check({ $0.lowerBoundMS = 1e9 }) {
            if case .lowerBoundAboveEstimate = $0 { true } else { false }
        }
        check({ $0.worldSize = 16 }) {
            if case .worldSizeMismatch(16, 8) = $0 { true } else { false }
        }
        check({ $0.sequences.append(.init(id: 0, length: 5)) }) {
            if case .duplicateSequenceID(0) = $0 { true } else { false }
        }
    }

    @Test func violationMessagesSayWhere() {
        let at = GroupLocation(microBatch: 2, group: 1)
        #expect(PlanViolation.misalignedGroup(at, firstRank: 3, degree: 2, worldSize: 8).description
            == "micro_batches[2].groups[1]: ranks [3, 5) must lie in [0, 8) and start at a multiple of the degree 2")
    }

    @Test func malformedDocumentsNameTheField() throws {
        var object = try JSONSerialization.jsonObject(with: valid.jsonData()) as! [String: Any]
        var batches = object["micro_batches"] as! [[String: Any]]
        var groups = batches[0]["groups"] as! [[String: Any]]
        groups[1].removeValue(forKey: "first_rank")
        batches[0]["groups"] = groups
        object["micro_batches"] = batches
        #expect(throws: PlanDecodingError.missingField("micro_batches[0].groups[1].first_rank")) {
            try Plan(json: JSONSerialization.data(withJSONObject: object))
        }
        #expect(throws: PlanDecodingError.self) { try Plan(json: Data("{\"version\": 1".utf8)) }
    }
}
