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
            tokens and estimated time; hatched areas are idle GPUs. Open the SVG in a browser. \
            A plan that `validate` rejects is not drawn. --out must be a regular file or a new \
            one; a symbolic link, FIFO or device is refused.

            Example:
              flexsp plan --lengths data/lengths/wikipedia-sample.txt --json > plan.json
              flexsp render plan.json --out plan.svg
            """
    )

    @Argument(help: "The plan document (JSON), or - for standard input.")
    var path: String

    @Option(help: "Where to write the SVG.")
    var out: String

    @Option(help: "Width of the time axis in pixels (100 to 100000).")
    var width: Double = 1100

    func validate() throws {
        guard width.isFinite, (100 ... 100_000).contains(width) else {
            throw ValidationError("--width must be a number of pixels from 100 to 100000, got \(width)")
        }
        try checkWritable(out)
    }

    func run() throws {
        let plan = try loadPlan(path)
        // A picture of a broken plan would mislead: draw only what `validate` accepts.
        let violations = Simulator.violations(in: plan)
        guard violations.isEmpty else { throw CLIError.invalidPlan(path: path, violations: violations.map(\.description)) }
        try writeFile(PlanTimeline(plan: plan, plotWidth: width).svg(), to: out)
        print("wrote \(out): \(plan.microBatches.count) micro-batches, \(plan.microBatches.reduce(0) { $0 + $1.groups.count }) groups")
    }
}
