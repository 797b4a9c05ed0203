import ArgumentParser
import FlexSPCore
import FlexSPPlanner
import Foundation

/// Where the cost model comes from: a preset (model, cluster, context, world size) or a file.
struct CostModelOptions: ParsableArguments {
    @Option(help: "Model preset (see `flexsp presets`).")
    var model: String = "gpt-7b"

    @Option(help: "Cluster preset (see `flexsp presets`).")
    var cluster: String = "a100-40g-8x8"

    @Option(name: .customLong("max-context"), help: "Longest trained sequence, e.g. 192K or 384K.")
    var maxContext = ContextLength(tokens: 384 * 1024)

    @Option(name: .customLong("world-size"), help: "GPUs in the cluster (a power of two; default: the cluster preset's).")
    var worldSize: Int?

    @Option(name: .customLong("cost-model"), help: "A cost-model JSON document; replaces the preset flags.")
    var costModelFile: String?

    func validate() throws {
        if let worldSize, !(1 ... Limits.maxWorldSize).contains(worldSize) || worldSize & (worldSize - 1) != 0 {
            throw ValidationError("--world-size must be a power of two between 1 and \(Limits.maxWorldSize), got \(worldSize)")
        }
    }

    func resolve() throws -> CostModel {
        if let path = costModelFile {
            let data = try readFile(path)
            do { return try CostModel(json: data) } catch { throw CLIError.invalidDocument(path: path, reason: "\(error)") }
        }
        let preset = try CostModel.preset(model: model, cluster: cluster, maxContext: maxContext.tokens, worldSize: worldSize)
        try preset.validatePreset()
        return preset
    }

    /// How the model and cluster are described in reports.
    var modelLabel: String { costModelFile == nil ? model : "custom" }
    var clusterLabel: String { costModelFile.map { ($0 as NSString).lastPathComponent } ?? cluster }
}
