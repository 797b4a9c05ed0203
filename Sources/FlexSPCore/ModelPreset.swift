/// A model whose cost constants ship with FlexSP, so the paper's setting can be planned
/// without hardware. The profiler (`python -m flexsp.profile`) measures the same constants on
/// the machine at hand.
public struct ModelPreset: Hashable, Sendable {
    public var name: String
    public var layers: Int
    public var hidden: Int
    public var queryHeads: Int
    public var kvHeads: Int
    /// Fitted compute constants (ms/token^2, ms/token, ms per group).
    public var alpha1: Double
    public var alpha2: Double
    public var beta1: Double
    /// Activation memory per token (MB), with the preset's activation checkpointing.
    public var activationMBPerToken: Double
    /// Parameter count in billions at given maximum contexts (tokens), ascending by context.
    /// GPT models have learned position embeddings, so their size grows with the context.
    public var billionsOfParameters: [(context: Int, billions: Double)]
    /// Where the constants come from.
    public var source: String

    public static func == (a: Self, b: Self) -> Bool { a.name == b.name }
    public func hash(into hasher: inout Hasher) { hasher.combine(name) }
}

extension ModelPreset {
    /// Every model preset, in the order `flexsp presets` lists them.
    public static let all: [ModelPreset] = [gpt7b, gpt13b, gpt30b, llama3_8b]

    /// GPT-7B as fitted by the FlexSP authors on A100-40GB (docs/PAPER.md section 2).
    public static let gpt7b = ModelPreset(
        name: "gpt-7b", layers: 32, hidden: 4096, queryHeads: 64, kvHeads: 64,
        alpha1: 5.128e-6, alpha2: 0.1839576, beta1: 629.3563, activationMBPerToken: 4.480441895,
        billionsOfParameters: [(4_096, 6.51), (196_608, 7.1174), (393_216, 7.8499)],
        source: "FlexSP reference code, A100-40GB bf16 (PAPER.md section 2)")

    /// GPT-13B as fitted by the FlexSP authors (docs/PAPER.md section 2).
    public static let gpt13b = ModelPreset(
        name: "gpt-13b", layers: 40, hidden: 5120, queryHeads: 64, kvHeads: 64,
        alpha1: 9.2852e-6, alpha2: 0.3060189, beta1: 1132.5632, activationMBPerToken: 4.220439453,
        billionsOfParameters: [(4_096, 12.3568), (196_608, 13.1161), (393_216, 14.0316)],
        source: "FlexSP reference code, A100-40GB bf16 (PAPER.md section 2)")

    /// GPT-30B as fitted by the FlexSP authors (docs/PAPER.md section 2).
    public static let gpt30b = ModelPreset(
        name: "gpt-30b", layers: 60, hidden: 6656, queryHeads: 64, kvHeads: 64,
        alpha1: 15.4262e-6, alpha2: 0.8035742, beta1: 2789.3644, activationMBPerToken: 3.417381836,
        billionsOfParameters: [(4_096, 30.538), (196_608, 31.5251), (393_216, 32.7153)],
        source: "FlexSP reference code, A100-40GB bf16 (PAPER.md section 2)")

    /// A Llama-3-8B-shaped model with grouped-query attention (32 query heads, 8 KV heads).
    ///
    /// Not measured: attention has gpt-7b's shape (32 layers x 4096), so `alpha1`, `beta1` and
    /// the activation memory are gpt-7b's; `alpha2` scales gpt-7b's by the per-token matmul
    /// FLOPs (13 h^2 with GQA and a 14336-wide SwiGLU vs 12 h^2). Profile to replace them.
    public static let llama3_8b = ModelPreset(
        name: "llama3-8b", layers: 32, hidden: 4096, queryHeads: 32, kvHeads: 8,
        alpha1: 5.128e-6, alpha2: 0.1839576 * 13 / 12, beta1: 629.3563, activationMBPerToken: 4.480441895,
        billionsOfParameters: [(4_096, 8.03), (393_216, 8.03)],
        source: "derived from gpt-7b by FLOP ratio (RoPE: size independent of context)")

    /// Looks a preset up by name.
    public static func named(_ name: String) throws(CostModelError) -> ModelPreset {
        guard let preset = all.first(where: { $0.name == name.lowercased() }) else {
            throw .unknownPreset(kind: "model", name: name, known: all.map(\.name))
        }
        return preset
    }

    /// The largest degree Ulysses attention supports: it splits query heads evenly across the
    /// group (KV heads are replicated when the degree exceeds their count), so the degree must be
    /// a power of two dividing the query-head count.
    public var maxDegree: Int {
        var d = 1
        while queryHeads % (d * 2) == 0 { d *= 2 }
        return d
    }

    /// MB one token moves through the all-to-alls of one training step: q, k, v and the output,
    /// forward and backward, every layer, bf16 (the reference's V(s), with k and v shrunk by GQA).
    public var a2aMBPerToken: Double {
        let kvShare = Double(kvHeads) / Double(queryHeads)
        let bytes = 2.0 * (2.0 + 2.0 * kvShare) * Double(layers) * Double(hidden) * 2.0
        return bytes / 1_048_576
    }

    /// Parameters (billions) at a maximum context, linear between the tabulated points.
    public func billionsOfParameters(maxContext: Int) throws(CostModelError) -> Double {
        let table = billionsOfParameters
        guard let first = table.first, let last = table.last,
              maxContext >= first.context, maxContext <= last.context else {
            throw .unsupportedSetting(
                "model \(name) has parameter counts for max contexts \(table.first?.context ?? 0) to \(table.last?.context ?? 0) tokens, not \(maxContext)")
        }
        for (a, b) in zip(table, table.dropFirst()) where maxContext <= b.context {
            let t = Double(maxContext - a.context) / Double(b.context - a.context)
            return a.billions + t * (b.billions - a.billions)
        }
        return last.billions
    }
}
