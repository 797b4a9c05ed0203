import FlexSPPlanner
import Foundation

/// A bar chart of mean step time per strategy, each bar labelled with its time and its speedup
/// over a baseline (the `static` strategy in `flexsp compare`), as in the paper's figure 8.
///
///     let results = try Comparison(planner: planner).run(batches: batches, costModel: model,
///                                                        strategies: [.flexsp, .batchAdaptive, .staticDegree(nil)])
///     let svg = ComparisonChart(results: results, baseline: results.last!).svg()
///
/// Bar heights are proportional to the mean step time; speedup = baseline mean / strategy mean.
/// Callers that score plans themselves (the benchmarks) pass `Bar`s directly.
///
/// - Complexity: O(strategies + batches) (the means).
public struct ComparisonChart: Sendable {
    /// One strategy's bar: its name, mean step time (ms) and how many batches the mean is over.
    public struct Bar: Hashable, Sendable {
        public var strategy: String
        public var meanStepMS: Double
        public var batches: Int

        public init(strategy: String, meanStepMS: Double, batches: Int) {
            self.strategy = strategy
            self.meanStepMS = meanStepMS
            self.batches = batches
        }

        public init(_ result: Comparison.Result) {
            self.init(strategy: result.strategy, meanStepMS: result.meanStepMS, batches: result.stepMS.count)
        }
    }

    public var bars: [Bar]
    public var baseline: Bar
    /// A heading; nil: a generic one.
    public var title: String?
    /// A second line under the heading (workload, model, cluster).
    public var subtitle: String?
    /// Height of the bars' axis in pixels.
    public var plotHeight: Double

    public init(bars: [Bar], baseline: Bar, title: String? = nil, subtitle: String? = nil, plotHeight: Double = 300) {
        self.bars = bars
        self.baseline = baseline
        self.title = title
        self.subtitle = subtitle
        self.plotHeight = plotHeight
    }

    /// A chart of `flexsp compare`'s results against its baseline.
    public init(results: [Comparison.Result], baseline: Comparison.Result, title: String? = nil,
                subtitle: String? = nil, plotHeight: Double = 300) {
        self.init(bars: results.map(Bar.init), baseline: Bar(baseline), title: title, subtitle: subtitle, plotHeight: plotHeight)
    }

    /// Baseline mean step time over the result's.
    public func speedup(of result: Bar) -> Double {
        result.meanStepMS > 0 ? baseline.meanStepMS / result.meanStepMS : 0
    }

    /// The label over one bar, e.g. `3.11 s · 1.45x`.
    public func label(of result: Bar) -> String {
        "\(Style.duration(result.meanStepMS)) · \(String(format: "%.2fx", speedup(of: result)))"
    }

    /// The SVG document.
    public func svg() -> String {
        let barWidth = 78.0, gap = 34.0
        let left = 70.0, right = 30.0, top = 70.0, bottom = 56.0
        // Wide enough for the bars and for the heading lines (about 6 px a character).
        let textWidth = Double(max((title ?? "").count * 8, (subtitle ?? "").count * 6)) - left
        let plotWidth = max(420, Double(bars.count) * (barWidth + gap) + gap, textWidth)
        var svg = SVG(width: left + plotWidth + right, height: top + plotHeight + bottom)
        svg.text(title ?? "Mean step time per strategy (speedup over \(baseline.strategy))", x: left, y: 22, size: 14, weight: "bold")
        if let subtitle { svg.text(subtitle, x: left, y: 40, size: 11, fill: "#555") }

        let largest = max(bars.map(\.meanStepMS).max() ?? 0, baseline.meanStepMS)
        let step = Style.tickStep(span: largest, target: 6)
        let axisTop = step > 0 ? (largest / step).rounded(.up) * step : 1
        let scale = axisTop > 0 ? plotHeight / axisTop : 0
        let axisY = top + plotHeight
        for t in Style.ticks(span: axisTop, step: step) {
            let y = axisY - t * scale
            svg.line(x1: left, y1: y, x2: left + plotWidth, y2: y, stroke: t == 0 ? "#333" : "#e2e2e2")
            svg.text(Style.duration(t), x: left - 6, y: y + 3, size: 9, anchor: "end", fill: "#333")
        }
        svg.line(x1: left, y1: top, x2: left, y2: axisY, stroke: "#333")
        svg.text("mean step time", x: 16, y: top + plotHeight / 2, size: 11, anchor: "middle", rotate: -90)

        for (i, result) in bars.enumerated() {
            let x = left + gap + Double(i) * (barWidth + gap)
            let height = result.meanStepMS * scale
            let isBaseline = result.strategy == baseline.strategy
            let fill = result.strategy.hasPrefix("flexsp") ? "#d9534f" : isBaseline ? "#7f7f7f" : "#4e79a7"
            svg.rect(x: x, y: axisY - height, width: barWidth, height: height, fill: fill, className: "bar",
                     title: "\(result.strategy): \(label(of: result)) over \(result.batches) batches",
                     extra: [("data-strategy", result.strategy), ("data-mean-ms", String(format: "%.3f", result.meanStepMS))])
            svg.text(Style.duration(result.meanStepMS), x: x + barWidth / 2, y: axisY - height - 18, size: 10, anchor: "middle")
            svg.text(String(format: "%.2fx", speedup(of: result)), x: x + barWidth / 2, y: axisY - height - 5, size: 11,
                     anchor: "middle", weight: "bold", className: "speedup")
            svg.text(result.strategy, x: x + barWidth / 2, y: axisY + 16, size: 11, anchor: "middle")
        }
        svg.text("Speedup = mean step time of \(baseline.strategy) / mean step time of the strategy",
                 x: left, y: axisY + 40, size: 10, fill: "#555")
        return svg.document
    }
}
