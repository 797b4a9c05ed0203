import FlexSPCore
import FlexSPPlanner
import FlexSPRender
import Foundation

/// The paper's evaluation (section 6) replayed in simulation: every strategy plans the same
/// batches and the simulator scores them with the paper's fitted cost model.
struct Reproduction {
    struct Config: Hashable {
        var dataset: String
        var model: String
        var context: Int
        var label: String { "\(model)/\(ContextLength(tokens: context))/\(dataset)" }
    }

    struct Outcome {
        var config: Config
        var runs: [StrategyRun]
        var dropped: Int
        var batches: Int
        func run(_ prefix: String) -> StrategyRun? { runs.first { $0.strategy.hasPrefix(prefix) } }
        var baseline: StrategyRun { run("static")! }
    }

    static let strategies: [Strategy] = [.flexsp, .milp, .batchAdaptive, .staticDegree(nil), .megatronDCP]
    static let models = ["gpt-7b", "gpt-13b", "gpt-30b"]
    static let contexts = [196_608, 393_216]

    var datasets: Datasets
    var steps: Int
    var planner: (Workload) -> Planner
    var log: (String) -> Void

    /// Runs every configuration. Also returns, for the timeline pictures, the flexsp and static
    /// plans of the first batch of gpt-7b / 384K / wikipedia.
    func run() async throws -> (outcomes: [Outcome], samplePlans: [Plan]) {
        var outcomes: [Outcome] = []
        var samplePlans: [Plan] = []
        for dataset in Datasets.names {
            for context in Self.contexts {
                for model in Self.models {
                    let config = Config(dataset: dataset, model: model, context: context)
                    log("reproduction: \(config.label)")
                    let costModel = try CostModel.bench(model: model, context: context, worldSize: 64)
                    let workload = try Workload.bench(datasets[dataset], costModel: costModel, maxContext: context, batchSize: 512)
                    let count = min(steps, workload.batchCount)
                    let batches = (0 ..< count).map { workload.batch($0) }
                    let planner = planner(workload)
                    let runs = try await runStrategies(Self.strategies, batches: batches, costModel: costModel, planner: planner, log: log)
                    outcomes.append(Outcome(config: config, runs: runs, dropped: workload.dropped, batches: count))
                    if model == "gpt-7b", context == 393_216, dataset == "wikipedia" {
                        let batch = try Batch(lengths: batches[0], costModel: costModel)
                        samplePlans = [try await planner.plan(batch, strategy: .flexsp), try await planner.plan(batch, strategy: .staticDegree(nil))]
                    }
                }
            }
        }
        return (outcomes, samplePlans)
    }

    /// The bar chart of one configuration.
    static func chart(_ outcome: Outcome) -> String {
        let bars = outcome.runs.map { ComparisonChart.Bar(strategy: $0.strategy, meanStepMS: $0.meanStepMS, batches: $0.plans.count) }
        let baseline = bars.first { $0.strategy.hasPrefix("static") }!
        let c = outcome.config
        return ComparisonChart(
            bars: bars, baseline: baseline,
            title: "\(c.model), max context \(ContextLength(tokens: c.context)), \(c.dataset): mean step time",
            subtitle: "64 GPUs (a100-40g-8x8 preset), batch 512, \(outcome.batches) batches, simulated with the paper's cost model"
        ).svg()
    }
}

/// Scaling: 16, 32 and 64 GPUs at 128K, and 64 GPUs from 64K to 384K.
struct Scaling {
    struct Point {
        var worldSize: Int
        var context: Int
        var runs: [StrategyRun]
        var meanTokens: Double
        var dropped: Int
        func run(_ prefix: String) -> StrategyRun? { runs.first { $0.strategy.hasPrefix(prefix) } }
    }

    static let strategies: [Strategy] = [.flexsp, .batchAdaptive, .staticDegree(nil), .megatronDCP]

    var datasets: Datasets
    var steps: Int
    var planner: (Workload) -> Planner
    var log: (String) -> Void

    func point(worldSize: Int, context: Int, longest: Int?) async throws -> Point {
        log("scaling: \(worldSize) GPUs, \(ContextLength(tokens: context))")
        let costModel = try CostModel.bench(context: context, worldSize: worldSize)
        let workload = try Workload.bench(datasets["wikipedia"], costModel: costModel, maxContext: context,
                                          batchSize: 512, longest: longest)
        let batches = (0 ..< min(steps, workload.batchCount)).map { workload.batch($0) }
        let runs = try await runStrategies(Self.strategies, batches: batches, costModel: costModel, planner: planner(workload), log: log)
        let tokens = mean(batches.map { Double($0.reduce(0, +)) })
        return Point(worldSize: worldSize, context: context, runs: runs, meanTokens: tokens, dropped: workload.dropped)
    }

    /// Strong scaling at 128K, on one workload: lengths the 16-GPU cluster cannot hold are
    /// dropped for every size.
    func clusters() async throws -> (points: [Point], longest: Int) {
        let sizes = [16, 32, 64]
        let context = 131_072
        let longest = try sizes.map { try CostModel.bench(context: context, worldSize: $0).longestPlannable(maxContext: context) }.min()!
        var points: [Point] = []
        for size in sizes { points.append(try await point(worldSize: size, context: context, longest: longest)) }
        return (points, longest)
    }

    func contexts() async throws -> [Point] {
        var points: [Point] = []
        for context in [65_536, 131_072, 196_608, 262_144, 393_216] {
            points.append(try await point(worldSize: 64, context: context, longest: nil))
        }
        return points
    }
}
