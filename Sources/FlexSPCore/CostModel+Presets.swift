import Foundation

extension CostModel {
    /// The cost model of a preset model on a preset cluster.
    ///
    ///     let model = try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8",
    ///                                      maxContext: 393_216)
    ///     model.modelStatesMB  // 2009.57: 7.8499 B params x 16 B (mixed-precision Adam) / 64
    ///
    /// - Parameters:
    ///   - maxContext: the longest sequence the model is trained on, in tokens; it sets the size
    ///     of GPT's learned position table.
    ///   - worldSize: GPUs in the cluster (a power of two; default: the preset's). Other sizes
    ///     reuse the preset's nodes and network.
    public static func preset(
        model modelName: String, cluster clusterName: String, maxContext: Int, worldSize: Int? = nil
    ) throws(CostModelError) -> CostModel {
        let model = try ModelPreset.named(modelName)
        let cluster = try ClusterPreset.named(clusterName)
        let n = worldSize ?? cluster.worldSize
        guard (1 ... Limits.maxWorldSize).contains(n), n & (n - 1) == 0 else {
            throw .unsupportedSetting("world size must be a power of two between 1 and \(Limits.maxWorldSize), got \(n)")
        }
        guard n <= cluster.gpusPerNode || n % cluster.gpusPerNode == 0 else {
            throw .unsupportedSetting("world size \(n) is not a whole number of \(cluster.gpusPerNode)-GPU nodes")
        }
        let billions = try model.billionsOfParameters(maxContext: maxContext)
        // ZeRO-3 with mixed-precision Adam keeps 16 bytes per parameter, sharded over all GPUs.
        // Like the reference code, a billion parameters count as 1024 MB per byte.
        let modelStates = billions * 1024 * 16 / Double(n)
        let suffix = n == cluster.worldSize ? "" : "x\(n)"
        return CostModel(
            name: "\(model.name)@\(cluster.name)\(suffix)", worldSize: n, gpusPerNode: min(cluster.gpusPerNode, n),
            memoryBudgetMB: cluster.memoryBudgetMB, modelStatesMB: modelStates,
            activationMBPerToken: model.activationMBPerToken,
            alpha1: model.alpha1, alpha2: model.alpha2, beta1: model.beta1,
            a2aMBPerToken: model.a2aMBPerToken, a2aBandwidthGBps: cluster.bandwidths(worldSize: n),
            maxDegree: min(model.maxDegree, n))
    }

    /// Checks a preset's document as `validate()` does, first saying in a preset's terms when
    /// the model states fill the memory budget (too few GPUs for the model).
    public func validatePreset() throws(CostModelError) {
        guard modelStatesMB < memoryBudgetMB else {
            throw .unsupportedSetting(String(
                format: "%@ needs %.0f MB per GPU for model states on %d GPUs, over the %.0f MB budget; use more GPUs",
                name, modelStatesMB, worldSize, memoryBudgetMB))
        }
        try validate()
    }
}

/// A context length as users write it: `384K`, `192k`, `1M` or a plain token count.
public struct ContextLength: Hashable, Sendable, CustomStringConvertible {
    public var tokens: Int

    public init(tokens: Int) { self.tokens = tokens }

    /// Parses `384K` (x1024), `1M` (x1024^2) or a plain integer up to `Limits.maxSequenceLength`;
    /// nil for anything else.
    public init?(_ text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        var digits = Substring(trimmed)
        var scale = 1
        if digits.hasSuffix("K") { scale = 1024; digits = digits.dropLast() }
        else if digits.hasSuffix("M") { scale = 1024 * 1024; digits = digits.dropLast() }
        guard let value = Int(digits), value > 0 else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: scale)
        guard !overflow, product <= Limits.maxSequenceLength else { return nil }
        tokens = product
    }

    public var description: String {
        if tokens % (1024 * 1024) == 0 { return "\(tokens / (1024 * 1024))M" }
        if tokens % 1024 == 0 { return "\(tokens / 1024)K" }
        return "\(tokens)"
    }
}
