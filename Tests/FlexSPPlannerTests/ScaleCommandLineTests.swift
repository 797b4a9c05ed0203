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
