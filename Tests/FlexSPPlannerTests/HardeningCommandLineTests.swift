import FlexSPCore
import Foundation
import Testing

/// The binary on hostile flags and files (issue 11): every case ends in a plain message and
/// exit status 1 or 64 (a usage error), never in a signal.
extension CommandLineTests {
    func expectRefused(_ arguments: [String], _ expected: String, input: String? = nil,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        let result = try run(arguments, input: input)
        #expect(result.status == 1 || result.status == 64, "\(arguments) exited \(result.status)", sourceLocation: sourceLocation)
        #expect(result.error.contains(expected), "\(arguments): \(result.error)", sourceLocation: sourceLocation)
        #expect(!result.error.contains("NSCocoaErrorDomain") && !result.error.contains("Fatal error"), sourceLocation: sourceLocation)
    }

    func temporaryDirectory() throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("flexsp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    @Test func hugeAndNonFiniteFlagsAreRefused() throws {
        let lengths = "data/lengths/wikipedia-sample.txt"
        try expectRefused(["plan", "--lengths", lengths, "--step", "9223372036854775807"], "--step 9223372036854775807 is past the last batch")
        try expectRefused(["presets", "--model", "gpt-7b", "--world-size", "4611686018427387904"], "between 1 and 1048576")
        // Without --model these flags would be ignored: refused rather than a silent exit 0.
        try expectRefused(["presets", "--world-size", "4611686018427387904"], "give --model too")
        try expectRefused(["presets", "--max-context", "192K"], "give --model too")
        try expectRefused(["plan", "--lengths", lengths, "--max-context", "9007199254740993K"], "'9007199254740993K' is invalid for '--max-context")
        try expectRefused(["plan", "--lengths", lengths, "--world-size", "2"], "over the 30720 MB budget")
        try expectRefused(["plan", "--lengths", lengths, "--batch-size", "100000"], "--batch-size must be between 1 and 65536")
        for limit in ["nan", "inf", "1e300", "0", "-1"] {
            try expectRefused(["plan", "--lengths", lengths, "--milp-time-limit=\(limit)"], "--milp-time-limit must be")
            try expectRefused(["serve", "--milp-time-limit=\(limit)"], "--milp-time-limit must be", input: "")
        }
        try expectRefused(["compare", "--lengths", lengths, "--milp-time-limit", "nan"], "--milp-time-limit must be")
        try expectRefused(["plan", "--lengths", lengths, "--strategy", "static:x"], "'static:x' is invalid for '--strategy")
        try expectRefused(["serve", "--strategy", "fastest"], "'fastest' is invalid for '--strategy", input: "")
        try expectRefused(["compare", "--lengths", lengths, "--strategies", "flexsp,,static"], "'flexsp,,static' is invalid for '--strategies")
        try expectRefused(["presets", "--model", "gpt-7b", "--max-context=-3K"], "'-3K' is invalid for '--max-context")
        let file = try temporaryFile("1234567890123456789\n")
        try expectRefused(["plan", "--lengths", file, "--batch-size", "1"], ":1: length '1234567890123456789' is over the limit")
        try expectRefused(["plan", "--lengths", "/tmp"], "cannot read /tmp: it is a directory")
        try expectRefused(["plan", "--lengths", "/dev/null"], "it is a character device, not a regular file")
        try expectRefused(["plan", "--lengths", try temporaryFile("")], "no sequence lengths")
        try expectRefused(["validate", try temporaryFile("")], "the document is empty")
        let fifo = try temporaryDirectory() + "/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        try expectRefused(["validate", fifo], "it is a FIFO")  // not a read that never ends
        let escape = try temporaryFile("12\u{1b}[31mred\n")
        let result = try run(["plan", "--lengths", escape])
        #expect(result.error.contains("\\u{1b}[31mred") && !result.error.contains("\u{1b}"))
    }

    @Test func outputsAreOnlyRegularOrNewFiles() throws {
        let planned = try run(["plan", "--lengths", "data/lengths/wikipedia-sample.txt", "--json", "--world-size", "8"])
        let plan = try temporaryFile(planned.output)
        let folder = try temporaryDirectory()
        let target = folder + "/target.txt"
        try "keep".write(toFile: target, atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: folder + "/link.svg", withDestinationPath: target)
        #expect(mkfifo(folder + "/fifo", 0o600) == 0)
        try expectRefused(["render", plan, "--out", folder + "/link.svg"], "it is a symbolic link")
        try expectRefused(["render", plan, "--out", folder + "/fifo"], "it is a FIFO")
        try expectRefused(["render", plan, "--out", "/dev/full"], "it is a character device")
        try expectRefused(["render", plan, "--out", folder], "it is a directory")
        try expectRefused(["render", plan, "--out", folder + "/missing/x.svg"], "no such directory")
        try expectRefused(["compare", "--lengths", "data/lengths/wikipedia-sample.txt", "--steps", "1", "--plot", folder + "/link.svg"],
                          "it is a symbolic link")
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "keep")
        let attributes = try FileManager.default.attributesOfItem(atPath: folder + "/link.svg")
        #expect(attributes[.type] as? FileAttributeType == .typeSymbolicLink)
        // A new file and a regular file are written.
        #expect(try run(["render", plan, "--out", folder + "/new.svg"]).status == 0)
        #expect(try run(["render", plan, "--out", target]).status == 0)
        #expect(try String(contentsOfFile: target, encoding: .utf8).hasPrefix("<?xml"))
        try expectRefused(["render", plan, "--out", folder + "/x.svg", "--width", "1e20"], "--width must be")
        try expectRefused(["render", plan, "--out", folder + "/x.svg", "--width", "inf"], "--width must be")
    }

    @Test func validateJSONAndRenderRefuseBrokenPlans() throws {
        let planned = try run(["plan", "--lengths", "data/lengths/wikipedia-sample.txt", "--json", "--world-size", "8"])
        let good = try temporaryFile(planned.output)
        let valid = try run(["validate", "--json", good])
        let verdict = try #require(try JSONSerialization.jsonObject(with: Data(valid.output.utf8)) as? [String: Any])
        #expect(valid.status == 0 && verdict["valid"] as? Bool == true && (verdict["violations"] as? [Any])?.isEmpty == true)
        var object = try #require(try JSONSerialization.jsonObject(with: Data(planned.output.utf8)) as? [String: Any])
        object["lower_bound_ms"] = -1e300
        let broken = try temporaryFile(String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
        let refused = try run(["validate", "--json", broken])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(refused.output.utf8)) as? [String: Any])
        #expect(refused.status == 1 && report["valid"] as? Bool == false)
        #expect((report["violations"] as? [String])?.contains { $0.hasPrefix("lower_bound_ms") } == true)
        let unreadable = try run(["validate", "--json", try temporaryFile("")])
        let error = try #require(try JSONSerialization.jsonObject(with: Data(unreadable.output.utf8)) as? [String: Any])
        #expect(unreadable.status == 1 && (error["error"] as? String)?.contains("empty") == true)
        try expectRefused(["render", broken, "--out", try temporaryDirectory() + "/x.svg"], "lower_bound_ms")
    }

    @Test func plansWithTinyTimesRenderQuickly() throws {
        let model = try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216, worldSize: 8)
        var tiny = model
        (tiny.alpha1, tiny.alpha2, tiny.beta1, tiny.a2aMBPerToken) = (0, 1e-300, 0, 0)
        let document = try temporaryFile(String(decoding: tiny.jsonData(), as: UTF8.self))
        let lengths = try temporaryFile((1 ... 20).map { "\($0 * 100)" }.joined(separator: "\n"))
        let planned = try run(["plan", "--cost-model", document, "--lengths", lengths, "--batch-size", "10", "--raw", "--json"])
        let plan = try temporaryFile(planned.output)
        let folder = try temporaryDirectory()
        #expect(try run(["render", plan, "--out", folder + "/t.svg"]).status == 0)
        let size = try FileManager.default.attributesOfItem(atPath: folder + "/t.svg")[.size] as? Int ?? .max
        #expect(size < 100_000)
        let compared = try run(["compare", "--cost-model", document, "--lengths", lengths, "--batch-size", "10", "--raw",
                                "--steps", "2", "--strategies", "flexsp,static", "--json", "--plot", folder + "/c.svg"])
        #expect(compared.status == 0)
    }

    @Test func serveRefusesOversizedRequestsPromptly() throws {
        let big = "{\"id\":1,\"lengths\":[" + Array(repeating: "300000", count: 100_000).joined(separator: ",") + "]}\n"
        let started = Date()
        let result = try run(["serve"], input: big + "{\"id\":2,\"lengths\":[4096]}\n")
        let lines = result.output.split(separator: "\n")
        #expect(lines.count == 2 && lines[0].contains("more than the limit of 65536") && lines[1].hasPrefix("{\"id\":2,"))
        #expect(Date().timeIntervalSince(started) < 15)
    }
}
