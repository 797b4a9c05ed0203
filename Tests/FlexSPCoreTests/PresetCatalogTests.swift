import FlexSPCore
import Foundation
import Testing

/// The presets document (`flexsp presets --json`), which the runtime reads instead of a copy.
@Suite struct PresetCatalogTests {
    @Test func theDocumentCarriesEveryPresetAndReadsBack() throws {
        let catalog = PresetCatalog()
        let data = catalog.jsonData()
        #expect(try JSONDecoder().decode(PresetCatalog.self, from: data) == catalog)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["schema_version"] as? Int == CostModel.schemaVersion)
        let models = try #require(object["models"] as? [[String: Any]])
        #expect(models.map { $0["name"] as? String } == ModelPreset.all.map(\.name))
        let gpt7b = try #require(models.first)
        #expect(gpt7b["alpha1_ms"] as? Double == ModelPreset.gpt7b.alpha1)
        #expect(gpt7b["max_degree"] as? Int == ModelPreset.gpt7b.maxDegree)
        let sizes = try #require(gpt7b["billions_of_parameters"] as? [[String: Any]])
        #expect(sizes.map { $0["max_context"] as? Int } == ModelPreset.gpt7b.billionsOfParameters.map(\.context))
        let cluster = try #require((object["clusters"] as? [[String: Any]])?.first)
        let bandwidths = try #require(cluster["a2a_bandwidth_gbps"] as? [String: Double])
        #expect(bandwidths["16"] == ClusterPreset.a100_40g_8x8.a2aBandwidthGBps[16])
        #expect(bandwidths.count == ClusterPreset.a100_40g_8x8.a2aBandwidthGBps.count)
    }
}

/// One step time for every schedule: the sum over micro-batches of the slowest group.
@Suite struct ScheduleTests {
    @Test func stepTimeIsTheSumOfEachMicroBatchsSlowestGroup() throws {
        let model = try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216)
        let lengths = [40_000, 9_000, 3_000, 100]
        let schedule = Schedule([
            [.init(degree: 8, members: [0]), .init(degree: 2, members: [1, 3])],
            [.init(degree: 1, members: [2])],
        ])
        let first = max(model.groupTime(lengths: [40_000], degree: 8), model.groupTime(lengths: [9_000, 100], degree: 2))
        let second = model.groupTime(lengths: [3_000], degree: 1)
        #expect(schedule.stepTime(model: model) { lengths[$0] } == first + second)
        #expect(Schedule().stepTime(model: model) { lengths[$0] } == 0)
        // The plan built from it states the same step time.
        let sequences = lengths.enumerated().map { Plan.Sequence(id: $0.offset, length: $0.element) }
        let plan = Plan(strategy: "x", costModel: model, sequences: sequences, schedule: schedule, lowerBoundMS: 0,
                        solver: .init(name: "x", wallMS: 0))
        #expect(plan.estStepMS == first + second)
        #expect(plan.schedule.microBatches.map { Set($0) } == schedule.microBatches.map { Set($0) })
        #expect(Simulator.violations(in: plan).isEmpty)
    }
}
