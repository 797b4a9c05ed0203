import ArgumentParser
import FlexSPCore
import Foundation

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a plan document against every rule and rescore it.",
        discussion: """
            Exits 0 and prints the plan's scores when it is valid; otherwise lists every broken \
            rule with where it is (micro-batch, group, sequence) and exits 1. With --json, prints \
            one object either way: {"path", "valid", "violations": [...], and when the document \
            could be read "est_step_ms", "lower_bound_ms", "gap", "sequences", "micro_batches"; \
            when it could not, "error"}.
            """
    )

    @Argument(help: "The plan document (JSON), or - for standard input.")
    var path: String

    @Flag(help: "Print the verdict as one JSON object.")
    var json = false

    func run() throws {
        let plan: Plan
        do {
            plan = try loadPlan(path)
        } catch where json {
            try printJSON(["path": path, "valid": false, "violations": [String](), "error": "\(error)"])
            throw ExitCode(1)
        }
        let violations = Simulator.violations(in: plan).map(\.description)
        if json {
            try printJSON([
                "path": path, "valid": violations.isEmpty, "violations": violations,
                "est_step_ms": Simulator.stepTime(of: plan), "lower_bound_ms": plan.lowerBoundMS,
                "gap": plan.gap, "sequences": plan.sequences.count, "micro_batches": plan.microBatches.count,
            ])
            if !violations.isEmpty { throw ExitCode(1) }
            return
        }
        guard violations.isEmpty else { throw CLIError.invalidPlan(path: path, violations: violations) }
        print("\(path.escapingControlCharacters()): valid")
        print(PlanSummary(plan: plan).text)
    }

    private func printJSON(_ object: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: finiteOrNull(object), options: [.sortedKeys, .withoutEscapingSlashes])
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }
}

/// Reads a plan document from a file or standard input (`-`), with an error naming the file.
func loadPlan(_ path: String) throws -> Plan {
    let data = try readFile(path)
    do { return try Plan(json: data) } catch { throw CLIError.invalidDocument(path: path, reason: "\(error)") }
}
