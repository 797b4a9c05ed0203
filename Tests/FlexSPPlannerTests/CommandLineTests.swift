import Foundation
import Testing

/// The `flexsp` binary on bad input: a clear message naming the problem, exit status 1, and
/// no crash. `swift test` builds the binary beside the tests.
@Suite struct CommandLineTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    func run(_ arguments: [String], input: String? = nil) throws -> (status: Int32, output: String, error: String) {
        let binary = Self.repository.appendingPathComponent(".build/debug/flexsp")
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "build first: \(binary.path)")
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = Self.repository
        let out = Pipe(), err = Pipe(), inp = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = inp
        try process.run()
        if let input { inp.fileHandleForWriting.write(Data(input.utf8)) }
        try inp.fileHandleForWriting.close()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let error = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output, error)
    }

    func temporaryFile(_ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("flexsp-\(UUID().uuidString).txt")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    @Test func badLengthFiles() throws {
        let bad = try temporaryFile("100\n2x0\n")
        var result = try run(["plan", "--lengths", bad])
        #expect(result.status == 1)
        #expect(result.error.contains("\(bad):2: '2x0' is not a sequence length"))
        result = try run(["plan", "--lengths", "/nonexistent/lengths.txt"])
        #expect(result.status == 1 && result.error.contains("cannot read /nonexistent/lengths.txt: no such file"))
        let long = try temporaryFile("500000\n100\n")
        result = try run(["plan", "--lengths", long, "--batch-size", "2", "--raw"])
        #expect(result.status == 1 && result.error.contains("sequence 0 has 500000 tokens"))
        #expect(!result.error.contains("crashed"))
    }

    @Test func planThenValidateAndABrokenPlan() throws {
        let planned = try run(["plan", "--lengths", "data/lengths/wikipedia-sample.txt", "--step", "2", "--json"])
        #expect(planned.status == 0)
        let path = try temporaryFile(planned.output)
        let valid = try run(["validate", path])
        #expect(valid.status == 0 && valid.output.contains("valid"))
        // Move the first group of the first micro-batch off its alignment.
        var object = try #require(try JSONSerialization.jsonObject(with: Data(planned.output.utf8)) as? [String: Any])
        var batches = object["micro_batches"] as! [[String: Any]]
        var groups = batches[0]["groups"] as! [[String: Any]]
        groups[0]["first_rank"] = 1
        batches[0]["groups"] = groups
        object["micro_batches"] = batches
        let broken = try temporaryFile(String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
        let refused = try run(["validate", broken])
        #expect(refused.status == 1)
        #expect(refused.error.contains("micro_batches[0].groups[0]: ranks [1,"))
    }

    @Test func serveKeepsServingAfterGarbage() throws {
        let result = try run(["serve", "--world-size", "8"], input: "garbage\n{\"id\": 4, \"lengths\": [3000, 1]}\n")
        let lines = result.output.split(separator: "\n")
        #expect(result.status == 0 && lines.count == 2)
        #expect(lines[0].contains("\"error\""))
        #expect(lines[1].hasPrefix("{\"id\":4,"))
    }
}
