import FlexSPCore
import Foundation
import Testing
@testable import FlexSPPlanner

/// A property test over garbled input (issue 11): valid documents, requests and length files
/// are mutated at random (seeded, so a failure reproduces) and fed to every parser and to the
/// plan service. Nothing may trap; every refusal must be a plain message with no internal
/// text and no raw control characters; every accepted request must yield a valid plan.
@Suite struct FuzzTests {
    /// Inputs generated per seed document; 4 seeds, so 4 x this many in all.
    static let inputsPerSeed = 1_500

    static let fragments = [
        "1e400", "-1e400", "-0", "0", "9223372036854775808", "-9223372036854775809", "1e-400", "64.5", "null", "true",
        "\"x\"", "[]", "{}", ",", ",]", ",}", "\"\\u0000\"", "\"\\ud800\"", "NaN", "Infinity", "1099511627777",
        "4611686018427387904", "\u{1b}[2J", "\u{0}", "\"id\":[1]", "\"lengths\":[1,]", "99999999999999999999",
    ]

    static func mutate(_ input: [UInt8], _ rng: inout SplitMix) -> [UInt8] {
        var bytes = input
        for _ in 0 ..< Int.random(in: 1 ... 3, using: &rng) {
            let at = bytes.isEmpty ? 0 : Int.random(in: 0 ..< bytes.count, using: &rng)
            switch Int.random(in: 0 ..< 7, using: &rng) {
            case 0 where !bytes.isEmpty: bytes[at] = UInt8.random(in: 0 ... 255, using: &rng)
            case 1: bytes.insert(Array("{}[],:\"0123456789eE.+-\\ \n#".utf8).randomElement(using: &rng)!, at: at)
            case 2 where !bytes.isEmpty: bytes.removeSubrange(at ..< min(bytes.count, at + Int.random(in: 1 ... 8, using: &rng)))
            case 3: bytes = Array(bytes.prefix(at))
            case 4:
                // Replace a run of digits (a number) with an extreme value.
                guard let start = bytes[at...].firstIndex(where: { (48 ... 57).contains($0) }) else { continue }
                let end = bytes[start...].firstIndex { !(48 ... 57).contains($0) && $0 != UInt8(ascii: ".") } ?? bytes.count
                bytes.replaceSubrange(start ..< end, with: Array(fragments.randomElement(using: &rng)!.utf8))
            case 5: bytes.insert(contentsOf: Array(fragments.randomElement(using: &rng)!.utf8), at: at)
            default:
                let end = min(bytes.count, at + Int.random(in: 1 ... 16, using: &rng))
                bytes.insert(contentsOf: bytes[at ..< end], at: at)
            }
        }
        return bytes
    }

    /// A message fit to show a user: not empty, no Foundation internals, no control characters.
    static func isPlain(_ message: String) -> Bool {
        !message.isEmpty && !message.contains("NSCocoaErrorDomain") && !message.contains("Error Domain")
            && !message.contains("Swift.DecodingError") && !message.contains("codingPath")
            && !message.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }
    }

    let model = try! CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216, worldSize: 8)

    @Test func garbledInputIsRefusedPlainlyAndNeverTraps() async throws {
        var rng = SplitMix(state: 0x5EED_F1E5)
        let service = PlanService(costModel: model, strategy: .flexsp, planner: Planner(milpTimeLimitSeconds: 1))
        let plan = try await Planner().plan(Batch(lengths: [9000, 3000, 500, 500, 77], costModel: model), strategy: .flexsp)
        let seeds: [[UInt8]] = [
            Array(#"{"id": 7, "lengths": [20000, 3000, 500, 1], "strategy": "batch-ada"}"#.utf8),
            Array(model.jsonData()),
            Array(plan.jsonData()),
            Array("# lengths\n4096\n512 # a comment\n\n77\n".utf8),
        ]
        var tried = 0, accepted = 0
        for seed in seeds {
            for _ in 0 ..< Self.inputsPerSeed {
                let input = Self.mutate(seed, &rng)
                let data = Data(input)
                tried += 1
                do { try StrictJSON.check(input) } catch { #expect(Self.isPlain(error.description)) }
                do { _ = try CostModel(json: data) } catch { #expect(Self.isPlain(error.description), "\(error)") }
                do {
                    let parsed = try Plan(json: data)
                    for violation in Simulator.violations(in: parsed) { #expect(Self.isPlain(violation.description)) }
                } catch {
                    #expect(Self.isPlain(error.description), "\(error)")
                }
                do { _ = try LengthFile.parse(String(decoding: input, as: UTF8.self), source: "f") } catch {
                    #expect(Self.isPlain(error.description), "\(error)")
                }
                let reply = await service.respond(to: data)
                try StrictJSON.check(reply)
                let object = try #require(try JSONSerialization.jsonObject(with: reply) as? [String: Any])
                #expect(object.keys.contains("id"))
                if let error = object["error"] {
                    let message = try #require(error as? String)
                    #expect(Self.isPlain(message), "\(String(decoding: input, as: UTF8.self)) -> \(message)")
                } else {
                    accepted += 1
                    #expect(Simulator.violations(in: try Plan(json: reply)).isEmpty)
                }
            }
        }
        print("fuzz: \(tried) garbled inputs through 5 parsers and the plan service; \(accepted) requests planned")
        #expect(tried == 4 * Self.inputsPerSeed)
    }
}
