import ArgumentParser
import FlexSPCore
import FlexSPPlanner

/// How the planner works, shared by `plan`, `compare` and `serve`: the lower bound plans state,
/// the `milp` strategy's time budget and the cores planning may use.
struct PlannerOptions: ParsableArguments {
    @Option(help: "Lower bound plans state: quick (closed form) or thorough (linear programs: tighter, slower).")
    var bound: BoundMode = .quick

    @Option(name: .customLong("milp-time-limit"), help: "Seconds the milp strategy may spend on each batch.")
    var milpTimeLimit: Double = 10

    @Option(help: ArgumentHelp(
        "Cores planning may use (default: all of them); the plan is the same for any count.",
        valueName: "n"))
    var threads: Int = Planner.allCores

    func validate() throws {
        guard milpTimeLimit.isFinite, milpTimeLimit > 0, milpTimeLimit <= Limits.maxMILPTimeLimitSeconds else {
            throw ValidationError(
                "--milp-time-limit must be a number of seconds above 0 and at most \(Int(Limits.maxMILPTimeLimitSeconds)), got \(milpTimeLimit)")
        }
        guard (1 ... Self.maxThreads).contains(threads) else {
            throw ValidationError("--threads must be between 1 and \(Self.maxThreads), got \(threads)")
        }
    }

    /// More tasks than this would only queue: a planning step has at most a few dozen
    /// independent pieces.
    static let maxThreads = 1_024

    /// The planner these flags describe; `datasetLongest` fixes what `static` resolves to.
    func planner(datasetLongest: Int? = nil) -> Planner {
        Planner(milpTimeLimitSeconds: milpTimeLimit, datasetLongest: datasetLongest, bound: bound, threads: threads)
    }
}

extension BoundMode: ExpressibleByArgument {}

extension Strategy: ExpressibleByArgument {
    /// `flexsp`, `milp`, `batch-ada`, `static`, `static:D` or `megatron-dcp`.
    public init?(argument: String) {
        guard let strategy = try? Strategy(parsing: argument) else { return nil }
        self = strategy
    }

    public var defaultValueDescription: String { description }
}

extension ContextLength: ExpressibleByArgument {
    /// `384K`, `1M` or a plain number of tokens.
    public init?(argument: String) {
        self.init(argument)
    }

    public var defaultValueDescription: String { description }
}

/// A comma-separated list of strategies, e.g. `flexsp,batch-ada,static:8`.
struct StrategyList: ExpressibleByArgument {
    var strategies: [Strategy]

    init(_ strategies: [Strategy]) { self.strategies = strategies }

    init?(argument: String) {
        var list: [Strategy] = []
        for name in argument.split(separator: ",", omittingEmptySubsequences: false) {
            guard let strategy = Strategy(argument: String(name)) else { return nil }
            list.append(strategy)
        }
        guard !list.isEmpty else { return nil }
        strategies = list
    }

    var defaultValueDescription: String { strategies.map(\.description).joined(separator: ",") }
}
