/// The paper's end-to-end speedups (docs/PAPER.md section 5, from the paper's section 6):
/// FlexSP and FlexSP-BatchAda over hand-tuned DeepSpeed (ZeRO + Ulysses) and over Megatron-LM,
/// measured on 8 x 8 A100-40GB with batch 512.
enum PaperResults {
    struct Speedups {
        var flexspVsDeepSpeed: Double
        var flexspVsMegatron: Double
        var batchAdaVsDeepSpeed: Double
        var batchAdaVsMegatron: Double

        /// FlexSP over BatchAda, derived from the two speedups over DeepSpeed.
        var flexspVsBatchAda: Double { flexspVsDeepSpeed / batchAdaVsDeepSpeed }
    }

    /// Keyed by model, context label and dataset (`github_code` stands for the paper's GitHub).
    static let table: [String: Speedups] = [
        "gpt-7b/192K/github_code": .init(flexspVsDeepSpeed: 1.45, flexspVsMegatron: 1.43, batchAdaVsDeepSpeed: 1.07, batchAdaVsMegatron: 1.06),
        "gpt-13b/192K/github_code": .init(flexspVsDeepSpeed: 1.40, flexspVsMegatron: 1.38, batchAdaVsDeepSpeed: 1.08, batchAdaVsMegatron: 1.06),
        "gpt-30b/192K/github_code": .init(flexspVsDeepSpeed: 1.44, flexspVsMegatron: 1.44, batchAdaVsDeepSpeed: 1.05, batchAdaVsMegatron: 1.05),
        "gpt-7b/384K/github_code": .init(flexspVsDeepSpeed: 1.26, flexspVsMegatron: 1.47, batchAdaVsDeepSpeed: 1.03, batchAdaVsMegatron: 1.19),
        "gpt-13b/384K/github_code": .init(flexspVsDeepSpeed: 1.29, flexspVsMegatron: 1.63, batchAdaVsDeepSpeed: 1.06, batchAdaVsMegatron: 1.34),
        "gpt-30b/384K/github_code": .init(flexspVsDeepSpeed: 1.22, flexspVsMegatron: 1.40, batchAdaVsDeepSpeed: 1.03, batchAdaVsMegatron: 1.18),
        "gpt-7b/192K/wikipedia": .init(flexspVsDeepSpeed: 1.72, flexspVsMegatron: 1.98, batchAdaVsDeepSpeed: 1.34, batchAdaVsMegatron: 1.54),
        "gpt-13b/192K/wikipedia": .init(flexspVsDeepSpeed: 1.59, flexspVsMegatron: 1.79, batchAdaVsDeepSpeed: 1.31, batchAdaVsMegatron: 1.48),
        "gpt-30b/192K/wikipedia": .init(flexspVsDeepSpeed: 1.64, flexspVsMegatron: 1.95, batchAdaVsDeepSpeed: 1.23, batchAdaVsMegatron: 1.47),
        "gpt-7b/384K/wikipedia": .init(flexspVsDeepSpeed: 1.46, flexspVsMegatron: 1.77, batchAdaVsDeepSpeed: 1.32, batchAdaVsMegatron: 1.60),
        "gpt-13b/384K/wikipedia": .init(flexspVsDeepSpeed: 1.43, flexspVsMegatron: 1.77, batchAdaVsDeepSpeed: 1.21, batchAdaVsMegatron: 1.50),
        "gpt-30b/384K/wikipedia": .init(flexspVsDeepSpeed: 1.53, flexspVsMegatron: 1.85, batchAdaVsDeepSpeed: 1.18, batchAdaVsMegatron: 1.43),
    ]

    /// Scaling 16 -> 32 -> 64 GPUs at 128K: FlexSP's throughput gain per doubling.
    static let scalingPerDoubling = [1.91, 1.82]
}
