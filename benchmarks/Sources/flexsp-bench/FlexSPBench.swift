import ArgumentParser
import FlexSPCore
import FlexSPPlanner
import FlexSPRender
import Foundation

@main
struct FlexSPBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flexsp-bench",
        abstract: "Regenerate benchmarks/REPORT.md and benchmarks/charts/: the paper's evaluation in simulation and the solver study.",
        discussion: """
            Run from the repository root with `make bench` (full) or `make bench BENCH_FLAGS=--quick`. \
            Length files: data/lengths/wikipedia.txt and github_code.txt in the repository (or \
            --lengths-dir). The milp strategy may spend up to --milp-time-limit seconds on every \
            batch it plans, which dominates the run time.
            """,
        subcommands: [ReportCommand.self, SolverPointCommand.self],
        defaultSubcommand: ReportCommand.self
    )
}

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report", abstract: "Write REPORT.md and charts/.")

    @Flag(help: "A short run (about 2-3 minutes): fewer batches, a 1 s milp limit, smaller solver-study axes.")
    var quick = false

    @Option(help: "Batches per configuration in the reproduction and the scaling study (default: 8, quick: 2).")
    var steps: Int?

    @Option(name: .customLong("milp-time-limit"), help: "Seconds the milp may spend per batch (default: 5, quick: 1).")
    var milpTimeLimit: Double?

    @Option(name: .customLong("solver-batches"), help: "Batches per solver-study point for flexsp (default: 20, quick: 4).")
    var solverBatches: Int?

    @Option(name: .customLong("milp-solver-batches"), help: "Batches per solver-study point for milp (default: 4, quick: 1).")
    var milpSolverBatches: Int?

    @Option(help: "Folder to write REPORT.md and charts/ into (default: the benchmarks package folder).")
    var out: String?

    @Option(name: .customLong("lengths-dir"), help: "Folder holding wikipedia.txt and github_code.txt (default: data/lengths in the repository).")
    var lengthsDir: String?

    func validate() throws {
        for (name, value) in [("--steps", steps), ("--solver-batches", solverBatches), ("--milp-solver-batches", milpSolverBatches)] {
            if let value, value < 1 { throw ValidationError("\(name) must be at least 1, got \(value)") }
        }
        if let milpTimeLimit, milpTimeLimit <= 0 { throw ValidationError("--milp-time-limit must be positive") }
    }

    func run() async throws {
        let clock = ContinuousClock()
        let started = clock.now
        // benchmarks/Sources/flexsp-bench/FlexSPBench.swift -> benchmarks/ -> the repository.
        let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let repository = package.deletingLastPathComponent()
        let outDir = URL(fileURLWithPath: out ?? package.path)
        let charts = outDir.appendingPathComponent("charts")
        try FileManager.default.createDirectory(at: charts, withIntermediateDirectories: true)

        let settings = Settings(
            quick: quick, steps: steps ?? (quick ? 2 : 8), milpTimeLimit: milpTimeLimit ?? (quick ? 1 : 5),
            solverBatches: solverBatches ?? (quick ? 4 : 20), milpSolverBatches: milpSolverBatches ?? (quick ? 1 : 4),
            batchSizes: quick ? [128, 512, 2048, 8192] : [128, 256, 512, 1024, 2048, 4096, 8192],
            worldSizes: quick ? [16, 64, 256, 1024] : [16, 32, 64, 128, 256, 512, 1024])
        let log: (String) -> Void = { message in
            let elapsed = (clock.now - started).seconds
            FileHandle.standardError.write(Data(String(format: "[%6.1f s] %@\n", elapsed, message).utf8))
        }
        let datasets = try Datasets(repository: repository, override: lengthsDir)
        log("length files from \(datasets.entries.map(\.path).joined(separator: ", "))")
        let planner = { (workload: Workload) in
            Planner(milpTimeLimitSeconds: settings.milpTimeLimit, datasetLongest: workload.lengths.max())
        }

        let reproduction = try await Reproduction(datasets: datasets, steps: settings.steps, planner: planner, log: log).run()
        let scaling = Scaling(datasets: datasets, steps: settings.steps, planner: planner, log: log)
        let clusters = try await scaling.clusters()
        let contexts = try await scaling.contexts()
        let longDocuments = try await LongDocuments(
            directory: package.appendingPathComponent("workloads"), steps: settings.steps, planner: planner, log: log).run()
        let study = try SolverStudy(
            executable: Bundle.main.executablePath ?? CommandLine.arguments[0], lengthFile: datasets["wikipedia"].path,
            flexspBatches: settings.solverBatches, milpBatches: settings.milpSolverBatches,
            milpTimeLimit: settings.milpTimeLimit, batchSizes: settings.batchSizes, worldSizes: settings.worldSizes, log: log
        ).run()

        var chartFiles: [String: String] = [:]
        for outcome in reproduction.outcomes {
            let c = outcome.config
            let name = "compare-\(c.dataset)-\(c.model)-\(ContextLength(tokens: c.context)).svg"
            try write(Reproduction.chart(outcome), to: charts.appendingPathComponent(name))
            chartFiles[c.label] = "charts/\(name)"
        }
        for plan in reproduction.samplePlans {
            let name = "plan-wikipedia-gpt-7b-384K-batch0-\(plan.strategy.replacingOccurrences(of: ":", with: "")).svg"
            try write(PlanTimeline(plan: plan).svg(), to: charts.appendingPathComponent(name))
            chartFiles["plan-\(plan.strategy)"] = "charts/\(name)"
        }

        let elapsed = (clock.now - started).seconds
        let report = Report(
            settings: settings, datasets: datasets, reproduction: reproduction.outcomes, clusters: clusters.points,
            clusterLongest: clusters.longest, contexts: contexts, solverBatch: study.batch, solverCluster: study.cluster,
            longDocuments: longDocuments,
            charts: chartFiles, elapsedSeconds: elapsed,
            clusterScale: Report.clusterScale(in: try? String(contentsOf: outDir.appendingPathComponent("REPORT.md"), encoding: .utf8)))
        try write(report.markdown, to: outDir.appendingPathComponent("REPORT.md"))
        log("wrote \(outDir.appendingPathComponent("REPORT.md").path) in \(Int(elapsed)) s")
    }

    func write(_ text: String, to url: URL) throws {
        do { try Data(text.utf8).write(to: url, options: .atomic) } catch { throw BenchError("cannot write \(url.path): \(error.localizedDescription)") }
    }
}

/// The knobs of one run, echoed in the report.
struct Settings {
    var quick: Bool
    var steps: Int
    var milpTimeLimit: Double
    var solverBatches: Int
    var milpSolverBatches: Int
    var batchSizes: [Int]
    var worldSizes: [Int]
}
