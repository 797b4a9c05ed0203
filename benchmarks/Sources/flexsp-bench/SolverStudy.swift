import ArgumentParser
import FlexSPCore
import FlexSPPlanner
import Foundation

/// The solver study: wall time, gap and memory of `flexsp` and `milp` as the batch grows and
/// as the cluster grows. Each point runs in a child process (`flexsp-bench solver-point`) so
/// that its peak resident memory is its own.
struct SolverStudy {
    /// What one child process measured.
    struct Measurement: Codable {
        var strategy: String
        var worldSize: Int
        var batchSize: Int
        var wallMS: [Double]
        var gaps: [Double]
        /// Batches where the milp used its whole time limit (it stops with its best solution).
        var hitTimeLimit: Int
        /// Batches where the milp found no solution at all within its limit.
        var failed: Int
        /// Peak RSS after loading the lengths, before planning (KB).
        var loadedRSSKB: Int
        /// Peak RSS at the end (KB).
        var peakRSSKB: Int
    }

    struct Point {
        var label: String
        var flexsp: Measurement
        var milp: Measurement
    }

    var executable: String
    var lengthFile: String
    var flexspBatches: Int
    var milpBatches: Int
    var milpTimeLimit: Double
    var batchSizes: [Int]
    var worldSizes: [Int]
    var log: (String) -> Void

    func measure(strategy: String, worldSize: Int, batchSize: Int, count: Int) throws -> Measurement {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["solver-point", "--strategy", strategy, "--world-size", "\(worldSize)", "--batch-size", "\(batchSize)",
                             "--count", "\(count)", "--milp-time-limit", "\(milpTimeLimit)", "--lengths", lengthFile]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BenchError("solver-point \(strategy) N=\(worldSize) B=\(batchSize) exited \(process.terminationStatus)")
        }
        return try JSONDecoder().decode(Measurement.self, from: data)
    }

    func point(worldSize: Int, batchSize: Int, label: String, milpCount: Int? = nil) throws -> Point {
        log("solver study: \(label)")
        return Point(label: label,
                     flexsp: try measure(strategy: "flexsp", worldSize: worldSize, batchSize: batchSize, count: flexspBatches),
                     milp: try measure(strategy: "milp", worldSize: worldSize, batchSize: batchSize, count: milpCount ?? milpBatches))
    }

    /// Batch axis at 64 GPUs; cluster axis with 8 sequences per GPU (weak scaling). The milp
    /// plans one batch only from 512 GPUs on, where one batch takes minutes whatever its limit.
    func run() throws -> (batch: [Point], cluster: [Point]) {
        let batch = try batchSizes.map { try point(worldSize: 64, batchSize: $0, label: "\($0) sequences, 64 GPUs") }
        let cluster = try worldSizes.map { n in
            try point(worldSize: n, batchSize: 8 * n, label: "\(n) GPUs, \(8 * n) sequences", milpCount: n >= 512 ? 1 : milpBatches)
        }
        return (batch, cluster)
    }
}

/// One point of the solver study, run as a child process; prints a `Measurement` as JSON.
struct SolverPointCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "solver-point", abstract: "Measure one solver on one setting (used by the report).",
        shouldDisplay: false)

    @Option var strategy: String
    @Option(name: .customLong("world-size")) var worldSize: Int
    @Option(name: .customLong("batch-size")) var batchSize: Int
    @Option var count: Int
    @Option(name: .customLong("milp-time-limit")) var milpTimeLimit: Double
    @Option var lengths: String

    func run() async throws {
        let context = 393_216
        let costModel = try CostModel.bench(context: context, worldSize: worldSize)
        // Parse only the lines the batches need (with room for dropped ones), so that the peak
        // after loading is small and planning's own memory shows.
        guard let text = try? String(contentsOfFile: lengths, encoding: .utf8) else { throw BenchError("cannot read \(lengths)") }
        let needed = count * batchSize * 2 + 1024
        let prefix = text.split(separator: "\n", maxSplits: needed, omittingEmptySubsequences: false).prefix(needed).joined(separator: "\n")
        let entry = Datasets.Entry(name: (lengths as NSString).lastPathComponent, path: lengths,
                                   lengths: try LengthFile.parse(prefix, source: lengths))
        let workload = try Workload.bench(entry, costModel: costModel, maxContext: context, batchSize: batchSize)
        let loaded = peakRSSKilobytes()
        let planner = Planner(milpTimeLimitSeconds: milpTimeLimit)
        let chosen = try Strategy(parsing: strategy)
        var result = SolverStudy.Measurement(strategy: strategy, worldSize: worldSize, batchSize: batchSize, wallMS: [], gaps: [],
                                             hitTimeLimit: 0, failed: 0, loadedRSSKB: loaded, peakRSSKB: 0)
        for index in 0 ..< min(count, workload.batchCount) {
            let batch = try Batch(lengths: workload.batch(index), costModel: costModel)
            let clock = ContinuousClock()
            let started = clock.now
            do {
                let plan = try await planner.plan(batch, strategy: chosen)
                result.wallMS.append(plan.solver.wallMS)
                result.gaps.append(plan.gap)
                if plan.solver.wallMS >= 0.95 * milpTimeLimit * 1000, case .milp = chosen { result.hitTimeLimit += 1 }
            } catch {
                result.wallMS.append((clock.now - started).seconds * 1000)
                result.failed += 1
            }
        }
        result.peakRSSKB = peakRSSKilobytes()
        FileHandle.standardOutput.write(try JSONEncoder().encode(result))
    }
}

extension Duration {
    var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}
