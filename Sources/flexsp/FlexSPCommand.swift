import ArgumentParser

@main
struct FlexSPCommand: ParsableCommand {
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
}
