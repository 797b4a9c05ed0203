import ArgumentParser
import FlexSPCore
import FlexSPRender
import Foundation

struct RenderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Draw a plan as an SVG timeline.",
        discussion: """
            Time runs left to right and ranks top to bottom; the plan's micro-batches follow one \
            another. Each sequence-parallel group is a block labelled with its degree, sequences, \
            tokens and estimated time; hatched areas are idle GPUs. Open the SVG in a browser.

            Example:
              flexsp plan --lengths data/lengths/wikipedia-sample.txt --json > plan.json
              flexsp render plan.json --out plan.svg
            """
    )

    @Argument(help: "The plan document (JSON), or - for standard input.")
    var path: String

    @Option(help: "Where to write the SVG.")
    var out: String

    @Option(help: "Width of the time axis in pixels.")
    var width: Double = 1100

    func validate() throws {
        guard width >= 100 else { throw ValidationError("--width must be at least 100, got \(width)") }
    }

    func run() throws {
        let data = path == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try readFile(path)
        let plan: Plan
        do { plan = try Plan(json: data) } catch { throw CLIError.unreadable(path: path, reason: "\(error)") }
        try writeFile(PlanTimeline(plan: plan, plotWidth: width).svg(), to: out)
        print("wrote \(out): \(plan.microBatches.count) micro-batches, \(plan.microBatches.reduce(0) { $0 + $1.groups.count }) groups")
    }
}

/// Writes text to a file, with an error that names it.
func writeFile(_ text: String, to path: String) throws {
    do {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
        let files = FileManager.default
        let directory = (path as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        let reason: String
        if files.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            reason = "it is a directory"
        } else if !files.fileExists(atPath: directory.isEmpty ? "." : directory, isDirectory: &isDirectory) {
            reason = "no such directory \(directory)"
        } else if !isDirectory.boolValue {
            reason = "\(directory) is not a directory"
        } else if !files.isWritableFile(atPath: directory.isEmpty ? "." : directory) {
            reason = "permission denied"
        } else {
            reason = (error as NSError).localizedDescription
        }
        throw CLIError.unwritable(path: path, reason: reason)
    }
}
