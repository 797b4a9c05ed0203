import ArgumentParser
import FlexSPCore
import Foundation

struct PresetsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "presets",
        abstract: "List the built-in models and clusters, or print one cost-model document.",
        discussion: """
            With --json, prints every preset as JSON (the runtime reads presets this way rather \
            than keeping its own copy). With --model (and optionally --cluster, --max-context, \
            --world-size), prints that preset's cost-model document.
            """
    )

    @Option(help: "Print the cost-model document of this model preset.")
    var model: String?

    @Option(help: "Cluster preset for --model (default: a100-40g-8x8).")
    var cluster: String?

    @Option(name: .customLong("max-context"), help: "Max context for --model, e.g. 384K (the default).")
    var maxContext: ContextLength?

    @Option(name: .customLong("world-size"), help: "GPUs for --model (default: the cluster's).")
    var worldSize: Int?

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        // These describe one cost-model document; without --model they would be ignored silently.
        if model == nil, cluster != nil || maxContext != nil || worldSize != nil {
            throw ValidationError("--cluster, --max-context and --world-size choose one cost-model document: give --model too (e.g. --model gpt-7b)")
        }
    }

    func run() throws {
        if let model {
            let context = maxContext ?? ContextLength(tokens: 384 * 1024)
            let costModel = try CostModel.preset(model: model, cluster: cluster ?? "a100-40g-8x8", maxContext: context.tokens, worldSize: worldSize)
            try costModel.validatePreset()
            FileHandle.standardOutput.write(costModel.jsonData() + Data("\n".utf8))
            return
        }
        if json {
            FileHandle.standardOutput.write(PresetCatalog().jsonData() + Data("\n".utf8))
            return
        }
        print("Models (constants in ms, MB):")
        print("  name        layers  hidden  heads(q/kv)  max degree  params (B) by max context          source")
        for m in ModelPreset.all {
            let params = m.billionsOfParameters.map { "\(ContextLength(tokens: $0.context)): \($0.billions)" }.joined(separator: ", ")
            print("  " + [pad(m.name, 11), pad("\(m.layers)", 7), pad("\(m.hidden)", 7), pad("\(m.queryHeads)/\(m.kvHeads)", 12),
                          pad("\(m.maxDegree)", 11), pad(params, 35), m.source].joined(separator: " "))
        }
        print("Clusters:")
        for c in ClusterPreset.all {
            let bandwidths = c.a2aBandwidthGBps.sorted { $0.key < $1.key }.map { "d=\($0.key): \($0.value)" }.joined(separator: ", ")
            print("  \(c.name): \(c.worldSize) GPUs, \(c.gpusPerNode) per node, budget \(Int(c.memoryBudgetMB)) MB; all-to-all GB/s \(bandwidths)")
            print("    other sizes: --world-size 1 ... \(Limits.maxWorldSize) (a power of two, whole \(c.gpusPerNode)-GPU nodes from \(c.gpusPerNode) up), "
                + "the same intra/inter-node bandwidths; the padding rule needs --max-context above 2 x --world-size (--raw plans lengths as they are)")
        }
    }
}

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}
