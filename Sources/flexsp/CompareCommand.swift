import ArgumentParser
import FlexSPCore
import FlexSPPlanner
import FlexSPRender
import Foundation

struct CompareCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Plan many batches with several strategies and compare their step times.",
        discussion: """
            Every strategy plans the same batches and is scored by the same simulator. \
            Speedups are the ratio of mean step times; the gap is each plan's distance above \
            its batch's proven lower bound. Progress goes to stderr.

            Example:
              flexsp compare --model gpt-7b --cluster a100-40g-8x8 --max-context 384K \\
                --lengths data/lengths/wikipedia-sample.txt --batch-size 512 --steps 20 \\
                --strategies flexsp,milp,batch-ada,static,megatron-dcp --json
            """
    )

    @OptionGroup var costModel: CostModelOptions
    @OptionGroup var workload: WorkloadOptions

    @Option(help: "Global batches to plan, from the first.")
    var steps: Int = 20

    @Option(help: "Comma-separated: flexsp, milp, batch-ada, static, static:D, megatron-dcp.")
    var strategies = StrategyList([.flexsp, .milp, .batchAdaptive, .staticDegree(nil), .megatronDCP])

    @OptionGroup var planner: PlannerOptions

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Also write a bar chart (SVG) of mean step time per strategy with speedups to this file.")
    var plot: String?

    func validate() throws {
        guard (1 ... 100_000).contains(steps) else { throw ValidationError("--steps must be between 1 and 100000, got \(steps)") }
        // Fail before planning, not after: the chart's path must be writable.
        if let plot { try checkWritable(plot) }
    }

    func run() async throws {
        let model = try costModel.resolve()
        let data = try workload.load(costModel: model, maxContext: costModel.maxContext.tokens)
        try data.requireBatches(steps)
        if let note = data.droppedNote { printError(note) }
        let outcome = try await Comparison(planner: planner.planner(datasetLongest: data.lengths.max())).compare(
            batches: (0 ..< steps).map { data.batch($0) }, costModel: model, strategies: strategies.strategies,
            progress: { printError($0) })
        let report = ComparisonReport(
            model: costModel.modelLabel, cluster: costModel.clusterLabel, dataset: workload.datasetLabel,
            worldSize: model.worldSize, maxContext: costModel.maxContext.description, batchSize: workload.batchSize, steps: steps,
            dropped: data.dropped, results: outcome.results, staticResult: outcome.baseline, batchAdaResult: outcome.batchAdaptive)
        if json {
            FileHandle.standardOutput.write(try report.jsonData() + Data("\n".utf8))
        } else {
            print(report.table)
        }
        if let plot {
            let chart = ComparisonChart(
                results: outcome.results, baseline: outcome.baseline,
                subtitle: "\(report.model) on \(report.cluster) (\(model.worldSize) GPUs), max context \(report.maxContext), "
                    + "\(report.dataset): \(steps) batches of \(report.batchSize)")
            try writeFile(chart.svg(), to: plot)
            printError("wrote \(plot)")
        }
    }
}

/// The result of `compare`, as JSON or as a table.
struct ComparisonReport {
    var model: String
    var cluster: String
    var dataset: String
    var worldSize: Int
    var maxContext: String
    var batchSize: Int
    var steps: Int
    var dropped: Int
    var results: [Comparison.Result]
    var staticResult: Comparison.Result
    var batchAdaResult: Comparison.Result?

    func speedup(_ result: Comparison.Result, over baseline: Comparison.Result?) -> Double? {
        baseline.map { $0.meanStepMS / result.meanStepMS }
    }

    func jsonData() throws -> Data {
        let strategies: [[String: Any]] = results.map { r in
            var entry: [String: Any] = [
                "name": r.strategy, "mean_step_ms": r.meanStepMS,
                "speedup_vs_static": speedup(r, over: staticResult)!,
                "solver_ms_p50": r.solverP50, "solver_ms_p99": r.solverP99,
                "mean_gap": r.meanGap, "max_gap": r.maxGap, "step_ms": r.stepMS,
            ]
            if let s = speedup(r, over: batchAdaResult) { entry["speedup_vs_batch_ada"] = s }
            return entry
        }
        let document: [String: Any] = [
            "model": model, "cluster": cluster, "dataset": dataset, "world_size": worldSize,
            "max_context": maxContext, "batch_size": batchSize, "steps": steps, "dropped": dropped,
            "static_baseline": staticResult.strategy, "strategies": strategies,
        ]
        // JSON has no NaN or infinity; a degenerate number is written as null.
        return try JSONSerialization.data(withJSONObject: finiteOrNull(document), options: [.sortedKeys, .withoutEscapingSlashes])
    }

    var table: String {
        var lines = [
            "\(model) on \(cluster) (\(worldSize) GPUs), max context \(maxContext), \(dataset): \(steps) batches of \(batchSize)"
                + (dropped > 0 ? " (\(dropped) over-long sequences dropped)" : ""),
            "",
            "strategy        mean step (ms)  vs \(pad(staticResult.strategy, 10))vs batch-ada  solver p50 (ms)  solver p99 (ms)  mean gap",
        ]
        for r in results {
            let vsBatchAda = speedup(r, over: batchAdaResult).map { String(format: "%.3fx", $0) } ?? "-"
            lines.append(String(format: "%@ %14.1f  %@ %@ %15.2f  %15.2f  %7.2f%%",
                                pad(r.strategy, 15), r.meanStepMS,
                                pad(String(format: "%.3fx", speedup(r, over: staticResult)!), 12),
                                pad(vsBatchAda, 12), r.solverP50, r.solverP99, r.meanGap * 100))
        }
        return lines.joined(separator: "\n")
    }
}

/// The document with every non-finite number replaced by null.
func finiteOrNull(_ value: Any) -> Any {
    switch value {
    case let number as Double: number.isFinite ? number : NSNull()
    case let list as [Double]: list.map { $0.isFinite ? $0 as Any : NSNull() }
    case let list as [Any]: list.map(finiteOrNull)
    case let object as [String: Any]: object.mapValues(finiteOrNull)
    default: value
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
