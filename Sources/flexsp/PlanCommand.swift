import ArgumentParser
import FlexSPCore
import FlexSPPlanner
import Foundation

struct PlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Plan one global batch and print the plan.",
        discussion: """
            Example:
              flexsp plan --model gpt-7b --cluster a100-40g-8x8 --max-context 384K \\
                --lengths data/lengths/wikipedia-sample.txt --step 3 --strategy flexsp --json
            """
    )

    @OptionGroup var costModel: CostModelOptions
    @OptionGroup var workload: WorkloadOptions

    @Option(help: "Which global batch to plan (0-based).")
    var step: Int = 0

    @Option(help: "flexsp, milp, batch-ada, static, static:D or megatron-dcp.")
    var strategy: Strategy = .flexsp

    @OptionGroup var planner: PlannerOptions

    @Flag(help: "Print the plan document (JSON) instead of a summary.")
    var json = false

    func validate() throws {
        guard step >= 0 else { throw ValidationError("--step must be 0 or more, got \(step)") }
    }

    func run() async throws {
        let model = try costModel.resolve()
        let data = try workload.load(costModel: model, maxContext: costModel.maxContext.tokens)
        // First what the padding rule dropped: it may be why no batch is left.
        if let note = data.droppedNote { printError(note) }
        guard step < data.batchCount else {
            throw ValidationError("--step \(step) is past the last batch: \(data.source) holds \(data.batchCount) full batches of \(data.batchSize)"
                + (data.batchCount > 0 ? " (steps 0 to \(data.batchCount - 1))" : ""))
        }
        let plan = try await planner.planner(datasetLongest: data.lengths.max())
            .plan(Batch(lengths: data.batch(step), costModel: model), strategy: strategy)
        if json {
            FileHandle.standardOutput.write(plan.jsonData() + Data("\n".utf8))
        } else {
            print(PlanSummary(plan: plan).text)
        }
    }
}

/// A readable account of a plan: one line per micro-batch with its group shape.
struct PlanSummary {
    var plan: Plan

    var text: String {
        var lines = [
            "strategy \(plan.strategy.escapingControlCharacters()) on \(plan.costModel.name) (\(plan.worldSize) GPUs): \(plan.sequences.count) sequences, \(plan.microBatches.count) micro-batches",
        ]
        for (m, microBatch) in plan.microBatches.enumerated() {
            let shape = microBatch.groups.map(\.degree).sorted(by: >).map(String.init).joined(separator: ",")
            let tokens = microBatch.groups.reduce(0) { $0 + $1.tokens }
            lines.append(String(format: "  micro-batch %d: %8.1f ms  %7d tokens  <%@>", m, microBatch.estMS, tokens, shape))
        }
        lines.append(String(format: "step %.1f ms, lower bound %.1f ms (gap %.2f%%), solved in %.1f ms",
                            plan.estStepMS, plan.lowerBoundMS, plan.gap * 100, plan.solver.wallMS))
        return lines.joined(separator: "\n")
    }
}
