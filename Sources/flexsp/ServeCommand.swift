import ArgumentParser
import FlexSPCore
import FlexSPPlanner
import Foundation

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Plan batches for a running training job: JSON lines on stdin, plans on stdout.",
        discussion: """
            Each request is one line: {"id": 7, "lengths": [1234, 80, ...]}, optionally with \
            "strategy" (default: --strategy) and "cost_model" (a cost-model document; default: \
            the flags). Sequences get ids 0, 1, ... in request order and are planned as given \
            (no padding, no dropping). The reply is one line: the plan document with the same \
            "id", or {"id": 7, "error": "..."} for a bad request, after which the service goes \
            on. It stops at the end of its input.
            """
    )

    @OptionGroup var costModel: CostModelOptions

    @Option(help: "Default strategy for requests that name none.")
    var strategy: String = "flexsp"

    @Option(name: .customLong("milp-time-limit"), help: "Seconds the milp strategy may spend per request.")
    var milpTimeLimit: Double = 10

    func validate() throws {
        _ = try Strategy(parsing: strategy)
    }

    func run() throws {
        let service = PlanService(
            costModel: try costModel.resolve(), strategy: try Strategy(parsing: strategy),
            planner: Planner(milpTimeLimitSeconds: milpTimeLimit, bound: costModel.bound))
        while let line = readLine(strippingNewline: true) {
            if line.allSatisfy(\.isWhitespace) { continue }
            FileHandle.standardOutput.write(service.respond(to: Data(line.utf8)) + Data("\n".utf8))
        }
    }
}
