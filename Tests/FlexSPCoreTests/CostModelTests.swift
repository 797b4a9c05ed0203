import Foundation
import Testing
@testable import FlexSPCore

/// Expected values are computed by hand from docs/PAPER.md section 2.
@Suite struct CostModelTests {
    let gpt7b = try! CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216)

    @Test func gpt7bPresetMatchesThePaper() {
        // 7.8499 B params x 16 bytes / 64 GPUs, a billion counted as 1024 MB.
        #expect(abs(gpt7b.modelStatesMB - 2009.5744) < 1e-9)
        // "about 6,400 tokens per GPU, 410K per cluster"
        #expect(abs(gpt7b.tokensPerGPU - 6407.945) < 1e-3)
        #expect(gpt7b.tokenCapacity(degree: 64) == 410_108)
        #expect(gpt7b.a2aMBPerToken == 2.0)  // 4 x 2 x 32 x 4096 x 2 bytes
        #expect(gpt7b.maxDegree == 64)
        #expect(gpt7b.degrees == [1, 2, 4, 8, 16, 32, 64])
        #expect(gpt7b.memoryBudgetMB == 30_720)
    }

    @Test func groupTimesByHand() {
        // d = 1: beta1 + alpha1 s^2 + alpha2 s, no all-to-all.
        #expect(abs(gpt7b.groupTime(lengths: [1_000], degree: 1) - 818.4419) < 1e-6)
        // d = 8, s = 8192: (alpha1 s^2 + alpha2 s) / 8 + 2 MB x s / (8 x 96.5 GB/s) + beta1.
        #expect(abs(gpt7b.groupTime(lengths: [8_192], degree: 8) - 881.968462151) < 1e-6)
        // d = 16 crosses nodes: 10.33 GB/s.
        #expect(abs(gpt7b.groupTime(lengths: [65_536], degree: 16) - 3552.413657649) < 1e-6)
        // beta1 once per group, sequences add.
        let two = gpt7b.groupTime(lengths: [1_000, 1_000], degree: 1)
        #expect(abs(two - (818.4419 * 2 - 629.3563)) < 1e-6)
    }

    @Test func memoryAndFit() {
        #expect(abs(gpt7b.groupMemoryMB(tokens: 6_400, degree: 1) - (2009.5744 + 4.480441895 * 6_400)) < 1e-9)
        #expect(gpt7b.fits(tokens: 6_407, degree: 1))
        #expect(!gpt7b.fits(tokens: 6_408, degree: 1))
        #expect(gpt7b.minimumDegree(length: 100_000) == 16)
        #expect(gpt7b.minimumDegree(length: 420_000) == nil)
    }

    @Test func otherPresets() throws {
        #expect(try ModelPreset.named("gpt-13b").a2aMBPerToken == 3.125)
        #expect(try ModelPreset.named("gpt-30b").a2aMBPerToken == 6.09375)
        let llama = try ModelPreset.named("llama3-8b")
        #expect(llama.maxDegree == 32)  // 32 query heads; KV heads replicate beyond 8
        #expect(llama.a2aMBPerToken == 1.25)  // k and v are a quarter of q with 8 of 32 heads
        let gpt7b288K = try ModelPreset.gpt7b.billionsOfParameters(maxContext: 288 * 1024)
        #expect(abs(gpt7b288K - 7.48365) < 1e-12)  // linear between 192K and 384K
        let big = try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 196_608, worldSize: 1024)
        #expect(big.bandwidth(degree: 1024) == 4.87)
        #expect(big.bandwidth(degree: 8) == 96.5)
        #expect(big.degrees.last == 64)  // 64 heads
    }

    @Test func presetErrorsNameTheProblem() {
        #expect(throws: CostModelError.unknownPreset(kind: "model", name: "gpt-9b", known: ModelPreset.all.map(\.name))) {
            try CostModel.preset(model: "gpt-9b", cluster: "a100-40g-8x8", maxContext: 393_216)
        }
        #expect(throws: CostModelError.self) {
            try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216, worldSize: 48)
        }
        #expect(throws: CostModelError.self) {
            try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 1_000_000)
        }
    }

    @Test func jsonRoundTripAndDesignExample() throws {
        let decoded = try CostModel(json: gpt7b.jsonData())
        #expect(decoded == gpt7b)
        let example = """
            {"version": 1, "name": "gpt-7b@a100-40g-8x8", "world_size": 64, "gpus_per_node": 8,
             "memory_budget_mb": 30720, "model_states_mb": 2009.57, "activation_mb_per_token": 4.4804,
             "alpha1_ms": 5.128e-6, "alpha2_ms": 0.1839576, "beta1_ms": 629.3563,
             "a2a_mb_per_token": 2.0, "a2a_bandwidth_gbps": {"2": 119.54, "4": 104.07, "8": 96.5,
             "16": 10.33, "32": 5.94, "64": 4.87}, "max_degree": 64}
            """
        let model = try CostModel(json: Data(example.utf8))
        #expect(model.bandwidth(degree: 16) == 10.33)
    }

    @Test func badDocumentsAreRejectedWithTheField() {
        var object = try! JSONSerialization.jsonObject(with: gpt7b.jsonData()) as! [String: Any]
        object.removeValue(forKey: "alpha1_ms")
        #expect(throws: CostModelError.invalidField("alpha1_ms", "is missing")) {
            try CostModel(json: JSONSerialization.data(withJSONObject: object))
        }
        object["alpha1_ms"] = -1.0
        #expect(throws: CostModelError.invalidField("alpha1_ms", "must be zero or positive, got -1.0")) {
            try CostModel(json: JSONSerialization.data(withJSONObject: object))
        }
        object["alpha1_ms"] = 1e-6
        object["version"] = 2
        #expect(throws: CostModelError.unsupportedVersion(2)) {
            try CostModel(json: JSONSerialization.data(withJSONObject: object))
        }
        #expect(throws: CostModelError.self) { try CostModel(json: Data("not json".utf8)) }
    }

    @Test func contextLengths() {
        #expect(ContextLength("384K")?.tokens == 393_216)
        #expect(ContextLength("192k")?.tokens == 196_608)
        #expect(ContextLength("65536")?.tokens == 65_536)
        #expect(ContextLength("lots") == nil)
        #expect(ContextLength("-3K") == nil)
    }
}
