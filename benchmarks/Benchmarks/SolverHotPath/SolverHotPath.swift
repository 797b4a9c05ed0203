import Benchmark
import FlexSPCore
import FlexSPPlanner
import Foundation

/// The planner's hot path under ordo-one/benchmark: our solver on one global batch (the work
/// `flexsp serve` does per training step), the lower bound, and the simulator's scoring.
///
///     cd benchmarks && swift package benchmark --target SolverHotPath
///
/// Batches come from the repository's sample length file (the first global batches of
/// `data/lengths/wikipedia-sample.txt`), under the paper's 7B / 64 GPU / 384K preset.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .peakMemoryResident],
        maxDuration: .seconds(5), maxIterations: 200)

    let model = try! CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216)
    let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let file = repository.appendingPathComponent("data/lengths/wikipedia-sample.txt")
    let text = try! String(contentsOf: file, encoding: .utf8)
    let raw = try! LengthFile.parse(text, source: file.path)

    for batchSize in [128, 512, 2048] {
        let workload = try! Workload(lengths: raw, source: file.path, batchSize: batchSize,
                                     rule: .reference(maxContext: 393_216, worldSize: 64))
        let batch = try! Batch(lengths: workload.batch(0), costModel: model)

        Benchmark("FlexSPSolver.solve, \(batchSize) sequences") { benchmark async in
            for _ in benchmark.scaledIterations {
                blackHole(try! await FlexSPSolver().solve(batch))
            }
        }
        Benchmark("LowerBound.stepTime, \(batchSize) sequences") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(LowerBound.stepTime(batch))
            }
        }
        Benchmark("Simulator.stepTime + violations, \(batchSize) sequences") { benchmark async in
            // Planned before the measured part (planning is async).
            let plan = try! await Planner().plan(batch, strategy: .flexsp)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(Simulator.stepTime(of: plan))
                blackHole(Simulator.violations(in: plan))
            }
        }
    }
}
