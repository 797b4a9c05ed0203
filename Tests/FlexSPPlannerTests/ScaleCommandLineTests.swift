import Foundation
import Testing

/// The binary at the edges of scale (issue 17): a cluster too large for the padding rule, and
/// the `--threads` flag.
extension CommandLineTests {
    @Test func hugeWorldSizeNamesThePaddingRuleAndTheFlags() throws {
        let lengths = "data/lengths/wikipedia-sample.txt"
        try expectRefused(["plan", "--lengths", lengths, "--world-size", "262144"],
                          "pads every sequence to a multiple of 2 x --world-size (524288 tokens on 262144 GPUs)")
        let result = try run(["plan", "--lengths", lengths, "--world-size", "262144"])
        #expect(result.error.contains("--max-context") && result.error.contains("--raw"))
        #expect(!result.error.contains("-131072"))
    }

    @Test func threadsFlag() throws {
        let lengths = "data/lengths/wikipedia-sample.txt"
        for bad in ["0", "-1", "100000"] {
            try expectRefused(["plan", "--lengths", lengths, "--threads=\(bad)"], "--threads must be between 1 and 1024")
        }
        var outputs: [String] = []
        for threads in ["1", "3"] {
            let result = try run(["plan", "--lengths", lengths, "--batch-size", "64", "--threads", threads, "--json"])
            #expect(result.status == 0, "\(result.error)")
            let plan = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
            let decisions = try JSONSerialization.data(withJSONObject: plan["micro_batches"] ?? [], options: [.sortedKeys])
            outputs.append(String(decoding: decisions, as: UTF8.self))
        }
        #expect(outputs[0] == outputs[1])
        try expectRefused(["serve", "--threads", "0"], "--threads must be between 1 and 1024", input: "")
        try expectRefused(["compare", "--lengths", lengths, "--threads", "0"], "--threads must be between 1 and 1024")
    }
}

/// Messages at the edges of scale name the rule and the flag that set the limit, never a
/// negative or unexplained one (issue 17, item 6).
extension CommandLineTests {
    @Test func paddingRuleThatDropsEverySequenceIsNamed() throws {
        // 2 x 131,072 = 262,144 of padding under a 262,160-token context: a 16-token limit.
        let lengths = try temporaryFile("100\n200\n300\n")
        let result = try run(["plan", "--lengths", lengths, "--world-size", "131072", "--max-context", "262160"])
        #expect(result.status != 0)
        #expect(result.error.contains("all 3 sequences are longer than 16 tokens, the longest the padding rule keeps"), "\(result.error)")
        #expect(result.error.contains("--max-context 262160 minus 2 x --world-size = 262144"))
        #expect(result.error.contains("--raw") && !result.error.contains("Usage"))
        // --raw plans them as they are.
        #expect(try run(["plan", "--lengths", lengths, "--world-size", "131072", "--max-context", "262160", "--raw", "--batch-size", "3"]).status == 0)
    }

    @Test func droppedSequencesNameThePaddingRule() throws {
        let lengths = try temporaryFile((["200000"] + Array(repeating: "1000", count: 4)).joined(separator: "\n"))
        // 393,216 - 2 x 131,072 = 131,072: the 200,000-token sequence is dropped, the rest kept.
        let result = try run(["plan", "--lengths", lengths, "--world-size", "131072", "--batch-size", "4"])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.error.contains("dropped 1 sequences longer than 131072 tokens (the padding rule keeps up to --max-context 393216 minus 2 x --world-size = 262144; --raw keeps them)"), "\(result.error)")
        // No full batch left: the drop is reported before the refusal, which has no stray space.
        let none = try run(["plan", "--lengths", lengths, "--world-size", "131072", "--batch-size", "5"])
        #expect(none.status != 0 && none.error.contains("dropped 1 sequences"))
        #expect(none.error.contains("holds 0 full batches of 5\n"), "\(none.error)")
    }

    @Test func worldSizeOutsideTheSupportedRangeNamesTheFlag() throws {
        let lengths = "data/lengths/wikipedia-sample.txt"
        for bad in ["3", "100000", "2097152", "0"] {
            try expectRefused(["plan", "--lengths", lengths, "--world-size", bad], "--world-size must be a power of two between 1 and 1048576, got \(bad)")
        }
        try expectRefused(["plan", "--lengths", lengths, "--batch-size", "65537"], "--batch-size must be between 1 and 65536, got 65537")
    }

    @Test func sequenceBeyondTheLargestDegreeOnAHugeClusterDoesNotAskForMoreGPUs() throws {
        let lengths = try temporaryFile("600000\n1000\n")
        let result = try run(["plan", "--lengths", lengths, "--world-size", "1048576", "--raw", "--batch-size", "2"])
        #expect(result.status != 0)
        #expect(result.error.contains("the cost model allows no degree above 64 (max_degree), so more GPUs do not help"), "\(result.error)")
    }

    @Test func presetsStateTheWorldSizesAccepted() throws {
        let result = try run(["presets"])
        #expect(result.status == 0)
        #expect(result.output.contains("--world-size 1 ... 1048576 (a power of two"), "\(result.output)")
        // The upper end is really accepted (here with --raw: the padding rule needs more context).
        let lengths = try temporaryFile("1000\n2000\n")
        #expect(try run(["plan", "--lengths", lengths, "--world-size", "1048576", "--raw", "--batch-size", "2"]).status == 0)
    }
}
