import ArgumentParser
import FlexSPCore
import Foundation

/// Where the batches come from: a length file cut into global batches.
struct WorkloadOptions: ParsableArguments {
    @Option(help: "Length file: one sequence length (tokens) per line.")
    var lengths: String

    @Option(name: .customLong("batch-size"), help: "Sequences per global batch.")
    var batchSize: Int = 512

    @Flag(help: "Plan lengths as they are: no padding to a multiple of 2 x world size, no dropping of over-long sequences.")
    var raw = false

    func validate() throws {
        guard (1 ... Limits.maxSequences).contains(batchSize) else {
            throw ValidationError("--batch-size must be between 1 and \(Limits.maxSequences), got \(batchSize)")
        }
    }

    /// Reads the file and applies the reference's rule (or none with `--raw`).
    func load(costModel: CostModel, maxContext: Int) throws -> Workload {
        let data = try readFile(lengths)
        guard let text = String(data: data, encoding: .utf8) else {
            throw CLIError.unreadable(path: lengths, reason: "not UTF-8 text")
        }
        let raw = try LengthFile.parse(text, source: lengths)
        // The rule keeps lengths up to max context - 2 x world size: none on a huge cluster.
        guard self.raw || maxContext > 2 * costModel.worldSize else {
            throw CLIError.paddingExceedsContext(worldSize: costModel.worldSize, maxContext: maxContext)
        }
        let rule = self.raw
            ? Workload.Rule(padMultiple: 1, maxLength: .max)
            : Workload.Rule.reference(maxContext: maxContext, worldSize: costModel.worldSize)
        do throws(WorkloadError) {
            return try Workload(lengths: raw, source: lengths, batchSize: batchSize, rule: rule)
        } catch {
            // The core names the limit; here the rule and the flags that set it are known.
            guard case .nothingLeft(let source, let dropped, _) = error, !self.raw else { throw error }
            throw CLIError.allDroppedByPadding(source: source, count: dropped, worldSize: costModel.worldSize, maxContext: maxContext)
        }
    }

    var datasetLabel: String { (lengths as NSString).lastPathComponent }
}

extension Workload {
    /// What the padding rule dropped, with the rule and the flags that set it; nil: nothing.
    var droppedNote: String? {
        guard dropped > 0 else { return nil }
        return "\(source): dropped \(dropped) sequences longer than \(rule.maxLength) tokens (the padding rule keeps up to --max-context "
            + "\(rule.maxLength + rule.padMultiple) minus 2 x --world-size = \(rule.padMultiple); --raw keeps them)"
    }
}
