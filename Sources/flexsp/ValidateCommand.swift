import ArgumentParser
import FlexSPCore
import Foundation

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a plan document against every rule and rescore it.",
        discussion: """
            Exits 0 and prints the plan's scores when it is valid; otherwise lists every broken \
            rule with where it is (micro-batch, group, sequence) and exits 1.
            """
    )

    @Argument(help: "The plan document (JSON), or - for standard input.")
    var path: String

    func run() throws {
        let data = path == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try readFile(path)
        let plan: Plan
        do { plan = try Plan(json: data) } catch { throw CLIError.invalidDocument(path: path, reason: "\(error)") }
        let violations = Simulator.violations(in: plan)
        guard violations.isEmpty else { throw CLIError.invalidPlan(path: path, violations: violations.map(\.description)) }
        print("\(path): valid")
        print(PlanSummary(plan: plan).text)
    }
}
