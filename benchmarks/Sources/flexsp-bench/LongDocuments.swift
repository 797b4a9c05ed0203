import FlexSPCore
import FlexSPPlanner
import Foundation

/// Long-document workloads (`benchmarks/workloads/`, written by `make_long_docs.py`): where
/// sequences are a large fraction of what a micro-batch holds and a greedy that fills memory
/// (Megatron's dynamic CP) used to beat flexsp. gpt-7b, 384K, 64 GPUs, batch 512 to 2,048.
struct LongDocuments {
    struct Outcome {
        var workload: String
        var batchSize: Int
        var runs: [StrategyRun]
        var batches: Int
        func run(_ prefix: String) -> StrategyRun? { runs.first { $0.strategy.hasPrefix(prefix) } }
    }

    static let workloads = ["long-mix", "long-tail"]
    static let batchSizes = [512, 1_024, 2_048]
    static let strategies: [Strategy] = [.flexsp, .milp, .batchAdaptive, .staticDegree(nil), .megatronDCP]

    /// `benchmarks/workloads/`.
    var directory: URL
    var steps: Int
    var planner: (Workload) -> Planner
    var log: (String) -> Void

    func run() async throws -> [Outcome] {
        let context = 393_216
        let costModel = try CostModel.bench(context: context, worldSize: 64)
        var outcomes: [Outcome] = []
        for name in Self.workloads {
            let lengths = try Datasets.read(directory.appendingPathComponent("\(name).txt").path)
            for batchSize in Self.batchSizes {
                log("long documents: \(name), batch \(batchSize)")
                let entry = Datasets.Entry(name: name, path: name, lengths: lengths)
                let workload = try Workload.bench(entry, costModel: costModel, maxContext: context, batchSize: batchSize)
                let count = min(steps, workload.batchCount)
                let batches = (0 ..< count).map { workload.batch($0) }
                let runs = try await runStrategies(Self.strategies, batches: batches, costModel: costModel,
                                             planner: planner(workload), log: log)
                outcomes.append(Outcome(workload: name, batchSize: batchSize, runs: runs, batches: count))
            }
        }
        return outcomes
    }
}

/// flexsp against each other strategy, batch by batch.
struct Versus {
    /// Mean of flexsp's step over the other's, per batch both planned.
    var meanRatio: Double
    /// The largest such ratio (above 1: the other won that batch).
    var worstRatio: Double
    /// Batches (by index) where the other's plan was faster.
    var lost: [Int]

    init(flexsp: StrategyRun, other: StrategyRun) {
        var ratios: [Double] = []
        var lost: [Int] = []
        // `other.plans` skips the batches it failed (only milp fails); flexsp plans every batch.
        var position = 0
        for index in flexsp.plans.indices where !other.failures.contains(index) {
            guard position < other.plans.count else { break }
            let ratio = flexsp.plans[index].stepMS / other.plans[position].stepMS
            position += 1
            ratios.append(ratio)
            if ratio > 1 + 1e-9 { lost.append(index) }
        }
        meanRatio = mean(ratios)
        worstRatio = ratios.max() ?? .nan
        self.lost = lost
    }

    var text: String { String(format: "%.3f / %.3f", meanRatio, worstRatio) }

    /// "mean / worst" cells of flexsp against each strategy named by prefix, then flexsp's
    /// solver p50 / p99; each loss is reported to `losses` under `label`.
    static func cells(_ runs: [StrategyRun], against prefixes: [String], label: String, losses: inout [String]) -> [String] {
        guard let flex = runs.first(where: { $0.strategy == "flexsp" }) else { return prefixes.map { _ in "-" } + ["-"] }
        let versus = prefixes.map { prefix -> String in
            guard let r = runs.first(where: { $0.strategy.hasPrefix(prefix) }), !r.plans.isEmpty else { return "-" }
            let v = Versus(flexsp: flex, other: r)
            if !v.lost.isEmpty {
                losses.append("\(label): \(r.strategy) beat flexsp on batches \(v.lost.map(String.init).joined(separator: ", "))")
            }
            return v.text
        }
        let solver = flex.plans.map(\.solverMS)
        return versus + ["\(Format.wall(percentile(solver, 0.5))) / \(Format.wall(percentile(solver, 0.99)))"]
    }
}

extension Report {
    var longDocumentSection: String {
        var table = MarkdownTable(["workload / batch", "flexsp (s)", "milp (s)", "batch-ada (s)", "static (s)", "megatron-dcp (s)",
                                   "flexsp / milp", "flexsp / batch-ada", "flexsp / static", "flexsp / dcp",
                                   "flexsp solver p50 / p99"])
        var losses: [String] = []
        for o in longDocuments {
            func s(_ prefix: String) -> String {
                guard let r = o.run(prefix), !r.plans.isEmpty else { return "none" }
                return Format.seconds(r.meanStepMS) + (r.failures.isEmpty ? "" : " *")
            }
            table.append(["\(o.workload) / \(o.batchSize)", s("flexsp"), s("milp"), s("batch-ada"),
                          "\(s("static")) (\(o.run("static")?.strategy ?? "-"))", s("megatron-dcp")]
                         + Versus.cells(o.runs, against: ["milp", "batch-ada", "static", "megatron-dcp"],
                                        label: "\(o.workload) batch \(o.batchSize)", losses: &losses))
        }
        return """
            ## 5. Long documents (gpt-7b, 384K, 64 GPUs)

            Workloads in `benchmarks/workloads/` (regenerate with `python3 make_long_docs.py`): \
            `long-mix` draws books, code, web and wiki lengths from log-normal laws (the shape \
            Megatron's own dynamic-CP benchmarks draw from) up to 384K tokens, mean about 8K; \
            `long-tail` is the long tail of the length files in `data/lengths/` (wikipedia documents of 8K tokens \
            or more, github files of 4K or more), in file order. \(settings.steps) batches per row.

            Mean simulated step per strategy; "flexsp / X" is flexsp's step over X's, mean and worst \
            batch (below 1: flexsp faster). The solver time is wall time on the shared 2-core machine.
            \\* milp found no solution within its limit on some batches; its mean is over the others.

            \(table.text)

            Batches where another strategy beat flexsp: \(losses.isEmpty ? "none." : "\n\n" + losses.map { "- \($0)" }.joined(separator: "\n"))
            """
    }
}

extension Report {
    /// Per setting of the reproduction: flexsp's step over each other strategy's (mean and worst
    /// batch), flexsp's solver time, and every batch where another strategy beat flexsp.
    var reproductionVersus: String {
        var table = MarkdownTable(["model / context / data", "flexsp / milp", "flexsp / batch-ada", "flexsp / static",
                                   "flexsp / dcp", "flexsp solver p50 / p99"])
        var losses: [String] = []
        for o in reproduction {
            table.append(["\(o.config.model) / \(ContextLength(tokens: o.config.context)) / \(o.config.dataset)"]
                         + Versus.cells(o.runs, against: ["milp", "batch-ada", "static", "megatron-dcp"],
                                        label: o.config.label, losses: &losses))
        }
        return """
            **flexsp against each strategy, batch by batch**: flexsp's step over the other's, mean \
            and worst batch (below 1: flexsp faster), and flexsp's solver wall time (2-core machine \
            shared with other work).

            \(table.text)

            Batches where another strategy beat flexsp: \(losses.isEmpty ? "none." : "\n\n" + losses.map { "- \($0)" }.joined(separator: "\n"))
            """
    }
}
