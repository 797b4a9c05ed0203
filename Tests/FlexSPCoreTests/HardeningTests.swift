import Foundation
import Testing
@testable import FlexSPCore

/// Hostile and degenerate input to the core's parsers and rules (issue 11): each is refused
/// with an error naming the field or line, and nothing traps.
@Suite struct HardeningTests {
    let preset = try! CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216, worldSize: 8)

    /// The preset's document with some fields replaced (raw JSON text for each value).
    func document(_ changes: [String: String]) -> Data {
        let object = try! JSONSerialization.jsonObject(with: preset.jsonData()) as! [String: Any]
        var text = String(decoding: try! JSONSerialization.data(withJSONObject: object.filter { changes[$0.key] == nil }, options: .sortedKeys), as: UTF8.self)
        for (key, value) in changes.sorted(by: { $0.key < $1.key }) { text = String(text.dropLast()) + ",\"\(key)\":\(value)}" }
        return Data(text.utf8)
    }

    func costModelError(_ changes: [String: String]) -> String {
        do {
            _ = try CostModel(json: document(changes))
            return "accepted"
        } catch {
            return error.description
        }
    }

    @Test func strictJSONRefusesWhatRFC8259Refuses() {
        let bad = [
            #"{"id":1,"lengths":[4096,],}"#, "[1,]", "{,}", "[01]", "[1.]", "[.5]", "[+1]", "[NaN]", "[Infinity]", "['a']",
            "[1e400]", "[-1e400]", "{\"a\":1,\"a\":2}", "[\"\u{01}\"]", "[\"\\x\"]", "[\"\\u12\"]", "// c\n[1]", "[1] x", "",
            "[", "{\"a\"}", "{\"a\":}", "[tru]", "\u{FEFF}[1]", "{\"a\":1 \"b\":2}", String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
        ]
        for text in bad {
            #expect(throws: StrictJSON.SyntaxError.self, "\(text.debugDescription)") { try StrictJSON.check(Array(text.utf8)) }
        }
        let good = ["{}", "[]", "0", "-0.5e-3", "\"\\u00e9\\ud83d\\ude00\"", " [1, 2.5, true, false, null, {\"a\": [\"b\"]}] ", "1E+2"]
        for text in good {
            #expect(throws: Never.self, "\(text.debugDescription)") { try StrictJSON.check(Array(text.utf8)) }
        }
        #expect(throws: StrictJSON.SyntaxError(line: 2, column: 7, reason: "expected a value, found ']'")) {
            try StrictJSON.check(Array("{\"a\":\n[4096,]}".utf8))
        }
        #expect(throws: StrictJSON.SyntaxError.self) { try StrictJSON.check([0x5B, 0x22, 0xFF, 0x22, 0x5D]) }  // not UTF-8
    }

    @Test func costModelFieldsAreNamed() {
        #expect(costModelError(["world_size": "64.5"]).contains("'world_size' should be an integer"))
        #expect(costModelError(["world_size": "1e300"]).contains("'world_size'"))
        #expect(costModelError(["world_size": "2305843009213693952"]).contains("'world_size' must be between 1 and 1048576"))
        #expect(costModelError(["max_degree": "4611686018427387904"]).contains("'max_degree'"))
        #expect(costModelError(["gpus_per_node": "0"]).contains("'gpus_per_node'"))
        #expect(costModelError(["alpha1_ms": "\"x\""]).contains("'alpha1_ms' should be a number"))
        #expect(costModelError(["alpha1_ms": "0", "alpha2_ms": "0", "beta1_ms": "0"]).contains("all zero"))
        #expect(costModelError(["name": "\"a\\u001b[2J\""]).contains("'name'"))
        #expect(!costModelError(["name": "\"a\\u001b[2J\""]).contains("\u{1b}"))
        #expect(costModelError(["a2a_bandwidth_gbps": #"{"2": 1, "02": 2, "4": 3}"#]).contains("keys '02' and '2' both name degree 2"))
        #expect(costModelError(["a2a_bandwidth_gbps": #"{"2": 1, "+2": 2}"#]).contains("both name degree 2"))
        #expect(costModelError(["a2a_bandwidth_gbps": #"{"2": 1, " 4": 2}"#]).contains("' 4' is not an integer degree"))
        #expect(costModelError(["a2a_bandwidth_gbps": #"{"2": 1, "4": 2,}"#]).contains("line 1"))
        #expect(costModelError(["version": "2"]).contains("version 2 is not supported"))
        let missing = String(decoding: preset.jsonData(), as: UTF8.self).replacingOccurrences(of: "\"alpha1_ms\"", with: "\"alpha1\"")
        #expect(throws: CostModelError.invalidField("alpha1_ms", "is missing")) { try CostModel(json: Data(missing.utf8)) }
        #expect(throws: CostModelError.malformed("the document must be a JSON object")) { try CostModel(json: Data("[1]".utf8)) }
    }

    @Test func hugeBudgetsAndTinyCostsDoNotTrap() throws {
        var model = preset
        model.memoryBudgetMB = 1e300
        model.activationMBPerToken = 1e-300
        try model.validate()
        #expect(model.tokenCapacity(degree: 8) == Limits.maxTokenCapacity)
        #expect(model.minimumDegree(length: Limits.maxSequenceLength) == 1)
    }

    @Test func presetsRefuseHugeOrImpossibleSettings() {
        #expect(throws: CostModelError.self) { try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216, worldSize: 1 << 62) }
        #expect(throws: CostModelError.self) {
            try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216, worldSize: 2).validatePreset()
        }
        #expect(ContextLength("9007199254740993K") == nil)
        #expect(ContextLength("9223372036854775807") == nil)
        #expect(ContextLength("384K")?.tokens == 393_216)
    }

    @Test func lengthFileGrammar() throws {
        #expect(try LengthFile.parse("# header\n100 # trailing\n\n  \t7\r\n+3\n0042\n", source: "f") == [100, 7, 3, 42])
        let cases: [(String, WorkloadError)] = [
            ("1\n2x\n", .badLine(source: "f", line: 2, text: "2x")),
            ("1\n1234567890123456789\n", .lengthTooLarge(source: "f", line: 2, text: "1234567890123456789")),
            ("99999999999999999999999999\n", .lengthTooLarge(source: "f", line: 1, text: "99999999999999999999999999")),
            ("1099511627777\n", .lengthTooLarge(source: "f", line: 1, text: "1099511627777")),
            ("-5\n", .nonPositiveLength(source: "f", line: 1, value: -5)),
            ("-99999999999999999999\n", .nonPositiveLength(source: "f", line: 1, value: -99_999_999_999_999)),
            ("0\n", .nonPositiveLength(source: "f", line: 1, value: 0)),
            ("# only a comment\n\n", .empty(source: "f")),
            ("1 2\n", .badLine(source: "f", line: 1, text: "1 2")),
            ("+\n", .badLine(source: "f", line: 1, text: "+")),
        ]
        for (text, expected) in cases {
            #expect(throws: expected, "\(text.debugDescription)") { try LengthFile.parse(text, source: "f") }
        }
        #expect(try LengthFile.parse("1099511627776\n", source: "f") == [Limits.maxSequenceLength])
        let message = WorkloadError.badLine(source: "f", line: 1, text: "\u{1b}[31m\u{7}").description
        #expect(!message.contains("\u{1b}") && !message.contains("\u{7}") && message.contains("\\u{1b}"))
    }

    @Test func workloadStepsNeverOverflow() throws {
        let workload = try Workload(lengths: [1, 2, 3], source: "f", batchSize: 1, rule: .init(padMultiple: 1, maxLength: .max))
        #expect(throws: WorkloadError.self) { try workload.requireBatches(1, from: .max) }
        #expect(throws: WorkloadError.self) { try workload.requireBatches(.max, from: 1) }
        #expect(throws: Never.self) { try workload.requireBatches(3) }
    }

    @Test func hostilePlansAreRejectedNotTrapped() {
        let sequences = [Plan.Sequence(id: 0, length: 100), Plan.Sequence(id: 1, length: 200)]
        let plan = Plan(strategy: "x", costModel: preset, sequences: sequences,
                        schedule: Schedule([[.init(degree: 1, members: [0]), .init(degree: 1, members: [1])]]),
                        lowerBoundMS: 0, solver: .init(name: "x", wallMS: 0))
        #expect(Simulator.violations(in: plan).isEmpty)
        func violations(_ change: (inout Plan) -> Void) -> [PlanViolation] {
            var copy = plan
            change(&copy)
            return Simulator.violations(in: copy)
        }
        #expect(violations { $0.microBatches[0].groups[0].firstRank = .max }.contains {
            if case .misalignedGroup = $0 { true } else { false }
        })
        #expect(violations { $0.sequences[0].length = 1 << 62; $0.sequences[1].length = 1 << 62 }
            .contains(.lengthTooLarge(id: 0, length: 1 << 62)))
        #expect(violations { $0.microBatches[0].groups[0].degree = 1 << 62 }.contains {
            if case .badDegree = $0 { true } else { false }
        })
        #expect(!violations { $0.worldSize = .min }.isEmpty)
        #expect(!violations { $0.worldSize = .max }.isEmpty)
        #expect(!violations { $0.microBatches[0].groups[0].sequenceIDs = [0, 0, 0, 0] }.isEmpty)
        #expect(violations { $0.sequences = []; $0.microBatches = []; $0.estStepMS = 0 }.contains(.noSequences))
        #expect(violations { $0.lowerBoundMS = -1e300 }.contains(.negativeNumber(field: "lower_bound_ms", value: -1e300)))
        #expect(!violations { $0.lowerBoundMS = .nan }.isEmpty)
        #expect(!violations { $0.solver.wallMS = -1 }.isEmpty)
        #expect(!violations { $0.microBatches[0].groups[0].estMS = -5 }.isEmpty)
        #expect(!violations { $0.microBatches[0].groups[0].tokens = .min }.isEmpty)
    }
}
