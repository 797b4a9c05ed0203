import FlexSPCore
@testable import FlexSPPlanner
import Foundation
import Testing
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import FlexSPRender

/// Parses an SVG document as XML; the test fails if it is not well-formed.
func parseSVG(_ text: String) throws -> XMLDocument {
    let document = try XMLDocument(data: Data(text.utf8), options: [])
    #expect(document.rootElement()?.name == "svg")
    #expect(document.rootElement()?.uri == "http://www.w3.org/2000/svg")
    return document
}

/// The elements of an SVG document with a given class.
func elements(_ document: XMLDocument, class name: String) throws -> [XMLElement] {
    try document.nodes(forXPath: "//*[@class='\(name)']").compactMap { $0 as? XMLElement }
}

/// An attribute's value. (Looked up by walking `attributes`: on Linux, `attribute(forName:)`
/// misses attributes of elements in the SVG namespace.)
func attribute(_ element: XMLElement, _ name: String) -> String? {
    element.attributes?.first { $0.localName == name || $0.name == name }?.stringValue
}

func double(_ element: XMLElement, _ name: String) -> Double {
    Double(attribute(element, name) ?? "") ?? .nan
}

/// A small 8-GPU cost model (the gpt-7b preset at 8 GPUs).
func smallModel() throws -> CostModel {
    try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 196_608, worldSize: 8)
}

/// A hand-made plan: micro-batch 0 has groups <4, 2, 1, 1>, micro-batch 1 one group of 8.
func handPlan() throws -> Plan {
    let model = try smallModel()
    let lengths = [16_384, 8_192, 4_096, 2_048, 1_024, 512, 24_000]
    let sequences = lengths.enumerated().map { Plan.Sequence(id: $0.offset, length: $0.element) }
    return Plan(strategy: "flexsp", costModel: model, sequences: sequences,
                schedule: Schedule([[.init(degree: 4, members: [0]), .init(degree: 2, members: [1]), .init(degree: 1, members: [2, 5]), .init(degree: 1, members: [3, 4])], [.init(degree: 8, members: [6])]]),
                lowerBoundMS: 1000, solver: .init(name: "flexsp", wallMS: 1))
}

@Suite("Plan timeline")
struct PlanTimelineTests {
    @Test("is well-formed SVG with one labelled block per group")
    func oneBlockPerGroup() throws {
        let plan = try handPlan()
        let document = try parseSVG(PlanTimeline(plan: plan).svg())
        let blocks = try elements(document, class: "group")
        let groups = plan.microBatches.flatMap(\.groups)
        #expect(blocks.count == groups.count)
        for (block, group) in zip(blocks, groups) {
            let title = try #require(block.elements(forName: "title").first?.stringValue)
            #expect(title.contains(PlanTimeline.label(of: group)))
            #expect(title.contains("SP=\(group.degree)"))
            #expect(Int(attribute(block, "data-degree") ?? "") == group.degree)
        }
        #expect(PlanTimeline.label(of: groups[2]).contains("2 seqs"))
    }

    @Test("block widths are proportional to estimated times, heights to degrees")
    func proportional() throws {
        let plan = try handPlan()
        let timeline = PlanTimeline(plan: plan, plotWidth: 1000)
        let blocks = try elements(try parseSVG(timeline.svg()), class: "group")
        let groups = plan.microBatches.flatMap(\.groups)
        let unitWidth = double(blocks[0], "width") / groups[0].estMS
        let unitHeight = double(blocks[0], "height") / Double(groups[0].degree)
        for (block, group) in zip(blocks, groups) {
            #expect(abs(double(block, "width") - group.estMS * unitWidth) <= 0.02)
            #expect(abs(double(block, "height") - Double(group.degree) * unitHeight) <= 0.02)
        }
        // The whole time axis is the plan's step: micro-batches follow one another.
        #expect(abs(unitWidth * plan.estStepMS - 1000) < 0.5)
        let second = blocks[groups.count - 1]
        #expect(abs(double(second, "x") - double(blocks[0], "x") - plan.microBatches[0].estMS * unitWidth) <= 0.02)
    }

    @Test("idle time is drawn behind every micro-batch")
    func idleVisible() throws {
        let plan = try handPlan()
        let document = try parseSVG(PlanTimeline(plan: plan).svg())
        #expect(try elements(document, class: "idle").count == plan.microBatches.count)
        // Groups shorter than their micro-batch leave room for the idle background to show.
        let shorter = plan.microBatches[0].groups.filter { $0.estMS < plan.microBatches[0].estMS }
        #expect(!shorter.isEmpty)
    }

    @Test("labels with markup characters are escaped")
    func escaping() throws {
        var plan = try handPlan()
        plan.strategy = "a<b & \"c\""
        _ = try parseSVG(PlanTimeline(plan: plan).svg())
        _ = try parseSVG(PlanTimeline(plan: plan, title: "<&>'\"").svg())
        plan.strategy = "control \u{1}\u{1b}[2J\u{7} characters"  // XML 1.0 forbids them
        _ = try parseSVG(PlanTimeline(plan: plan).svg())
        #expect(SVG.number(1e300) == String(format: "%.0f", 1e300))
    }

    @Test("tiny estimated times draw a bounded axis")
    func tinyTimes() throws {
        #expect(Style.ticks(span: 1e-300, step: Style.tickStep(span: 1e-300, target: 10)).count <= 101)
        #expect(Style.ticks(span: 1, step: 1e-320).count <= 101)
        #expect(Style.ticks(span: .infinity, step: 1).isEmpty && Style.ticks(span: 1, step: 0).isEmpty)
    }

    @Test("a real plan of the flexsp solver renders")
    func solverPlan() async throws {
        let model = try smallModel()
        let lengths = (0 ..< 64).map { 256 * (1 + ($0 * 37) % 60) }
        let plan = try await Planner().plan(Batch(lengths: lengths, costModel: model), strategy: .flexsp)
        let blocks = try elements(try parseSVG(PlanTimeline(plan: plan).svg()), class: "group")
        #expect(blocks.count == plan.microBatches.reduce(0) { $0 + $1.groups.count })
    }
}

@Suite("Comparison chart")
struct ComparisonChartTests {
    func result(_ name: String, _ steps: [Double]) -> Comparison.Result {
        Comparison.Result(strategy: name, stepMS: steps, solverMS: steps.map { _ in 1 }, gaps: steps.map { _ in 0 },
                          shapes: steps.map { _ in [[1]] })
    }

    @Test("one bar per strategy, heights proportional to mean step time, speedups labelled")
    func bars() throws {
        let results = [result("flexsp", [1000, 2000]), result("batch-ada", [2000, 2500]), result("static:64", [3000, 3000])]
        let chart = ComparisonChart(results: results, baseline: results[2], subtitle: "gpt-7b & <test>")
        let document = try parseSVG(chart.svg())
        let bars = try elements(document, class: "bar")
        #expect(bars.map { attribute($0, "data-strategy") } == ["flexsp", "batch-ada", "static:64"])
        let unit = double(bars[0], "height") / results[0].meanStepMS
        for (bar, r) in zip(bars, results) {
            #expect(abs(double(bar, "height") - r.meanStepMS * unit) <= 0.02)
        }
        let speedups = try elements(document, class: "speedup").map { $0.stringValue ?? "" }
        #expect(speedups == ["2.00x", "1.33x", "1.00x"])
        #expect(chart.speedup(of: ComparisonChart.Bar(results[0])) == 2)
    }
}
