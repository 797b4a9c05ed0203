import FlexSPCore
import FlexSPPlanner
import Foundation

/// What one plan costs, rescored by the simulator, with its all-to-all time.
struct PlanStats {
    var stepMS: Double
    var solverMS: Double
    var gap: Double
    var shape: [[Int]]
    /// All-to-all time on each micro-batch's critical group (the one that sets its time), summed.
    var criticalA2AMS: Double
    /// GPU-milliseconds spent in all-to-all over all groups.
    var a2aGPUMS: Double
    /// GPU-milliseconds the groups are busy (compute + all-to-all + beta1).
    var busyGPUMS: Double

    init(_ plan: Plan) throws {
        if let broken = Simulator.violations(in: plan).first {
            throw BenchError("\(plan.strategy) produced an invalid plan: \(broken)")
        }
        let model = plan.costModel
        var lengthOf: [Int: Int] = [:]
        for s in plan.sequences { lengthOf[s.id] = s.length }
        func a2a(_ group: Plan.Group) -> Double {
            guard group.degree > 1 else { return 0 }
            let tokens = group.sequenceIDs.reduce(0) { $0 + lengthOf[$1]! }
            return model.a2aMBPerToken * Double(tokens) / (Double(group.degree) * model.bandwidth(degree: group.degree))
        }
        var critical = 0.0, a2aGPU = 0.0, busy = 0.0
        for microBatch in plan.microBatches {
            let times = microBatch.groups.map { model.groupTime(lengths: $0.sequenceIDs.map { lengthOf[$0]! }, degree: $0.degree) }
            if let slowest = times.indices.max(by: { times[$0] < times[$1] }) {
                critical += a2a(microBatch.groups[slowest])
            }
            for (group, time) in zip(microBatch.groups, times) {
                a2aGPU += Double(group.degree) * a2a(group)
                busy += Double(group.degree) * time
            }
        }
        stepMS = Simulator.stepTime(of: plan)
        solverMS = plan.solver.wallMS
        gap = plan.gap
        shape = plan.shape
        criticalA2AMS = critical
        a2aGPUMS = a2aGPU
        busyGPUMS = busy
    }
}

/// One strategy over a run of batches.
struct StrategyRun {
    var strategy: String
    var plans: [PlanStats] = []
    /// Batches the strategy could not plan (the milp finding no solution in time), by index.
    var failures: [Int] = []

    var meanStepMS: Double { mean(plans.map(\.stepMS)) }
    var meanGap: Double { mean(plans.map(\.gap)) }
    /// Share of step time in all-to-all along the critical path.
    var criticalA2AShare: Double { plans.map(\.criticalA2AMS).reduce(0, +) / plans.map(\.stepMS).reduce(0, +) }
    /// Share of busy GPU-time in all-to-all.
    var gpuA2AShare: Double { plans.map(\.a2aGPUMS).reduce(0, +) / plans.map(\.busyGPUMS).reduce(0, +) }
    var meanCriticalA2AMS: Double { mean(plans.map(\.criticalA2AMS)) }
}

func mean(_ values: [Double]) -> Double { values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count) }

/// Nearest-rank percentile (as `Comparison.Result` computes it).
func percentile(_ values: [Double], _ p: Double) -> Double {
    values.isEmpty ? .nan : Comparison.Result.percentile(values, p)
}

/// Plans `batches` with each strategy and rescores every plan.
func runStrategies(
    _ strategies: [Strategy], batches: [[Int]], costModel: CostModel, planner: Planner, log: (String) -> Void
) async throws -> [StrategyRun] {
    var runs: [StrategyRun] = []
    for strategy in strategies {
        var run = StrategyRun(strategy: strategy.description)
        for (index, lengths) in batches.enumerated() {
            do {
                let plan = try await planner.plan(Batch(lengths: lengths, costModel: costModel), strategy: strategy)
                if case .staticDegree(nil) = strategy { run.strategy = plan.strategy }
                run.plans.append(try PlanStats(plan))
            } catch let error as PlanningError {
                guard case .milp = strategy else { throw BenchError("\(strategy) on batch \(index): \(error)") }
                run.failures.append(index)
            }
        }
        log("  \(run.strategy): mean step \(Format.ms(run.meanStepMS)) ms over \(run.plans.count) batches")
        runs.append(run)
    }
    return runs
}

/// Peak resident set size of this process, in kilobytes.
///
/// On Linux this is `VmHWM` from `/proc/self/status`, the high-water mark of this process's own
/// memory. `getrusage`'s `ru_maxrss` is not used there: Linux carries it over from the parent
/// across fork and exec, so a child spawned by a 90 MB parent reports at least 90 MB.
/// Elsewhere it is `ru_maxrss` (kilobytes on Linux, bytes on macOS).
func peakRSSKilobytes() -> Int {
    #if os(Linux)
    if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
       let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
       let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") {
        return kilobytes
    }
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int(usage.ru_maxrss)
    #else
    var usage = rusage()
    getrusage(RUSAGE_SELF, &usage)
    return Int(usage.ru_maxrss) / 1024
    #endif
}
