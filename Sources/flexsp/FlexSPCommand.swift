import ArgumentParser
import FlexSPCore
import Foundation

@main
struct FlexSPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flexsp",
        abstract: "Plan flexible sequence parallelism for LLM training on variable-length data.",
        discussion: """
            For every global batch, FlexSP splits the GPUs into sequence-parallel groups of \
            different sizes that run side by side and sends each sequence where the step \
            finishes soonest. `plan` plans one batch, `compare` scores strategies over many, \
            `validate` checks a plan, `serve` plans batches for a running training job, and \
            `presets` lists the built-in models and clusters.
            """,
        subcommands: [
            PlanCommand.self, CompareCommand.self, ValidateCommand.self, ServeCommand.self, PresetsCommand.self,
            RenderCommand.self,
        ]
    )

    /// Runs a command; an error's message goes to stderr with control characters escaped, so
    /// text echoed from a file or an argument cannot drive the terminal.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var planning = command as? AsyncParsableCommand { try await planning.run() } else { try command.run() }
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }  // --help, --version: the usual output
            let message = fullMessage(for: error).escapingControlCharacters(keepingLines: true)
            if !message.isEmpty {
                FileHandle.standardError.write(Data(((message.hasPrefix("Error:") || error is ExitCode ? "" : "Error: ") + message + "\n").utf8))
            }
            Foundation.exit(code.rawValue)
        }
    }
}
