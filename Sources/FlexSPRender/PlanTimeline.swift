import FlexSPCore
import Foundation

/// A plan drawn as a timeline: time runs left to right, ranks top to bottom, and the plan's
/// micro-batches follow one another in time. Each sequence-parallel group is one block spanning
/// its ranks and its estimated time, labelled with its degree, sequence count, tokens and
/// estimated milliseconds; what is left of a micro-batch after a group finishes (or ranks no
/// group uses) is drawn hatched as idle time.
///
///     let plan = try planner.plan(batch, strategy: .flexsp)
///     let svg: String = PlanTimeline(plan: plan).svg()
///
/// Block widths are proportional to each group's `estMS`, and a micro-batch is as wide as its
/// `estMS` (the longest of its groups), so the whole picture is as wide as the plan's step.
/// Every block carries its full label as a tooltip (`<title>`) and, where it has room, as text.
///
/// - Complexity: O(groups).
public struct PlanTimeline: Sendable {
    public var plan: Plan
    /// Width of the time axis in pixels.
    public var plotWidth: Double
    /// A heading; nil: one made from the plan (strategy, model, step time, gap).
    public var title: String?

    public init(plan: Plan, plotWidth: Double = 1100, title: String? = nil) {
        self.plan = plan
        self.plotWidth = plotWidth
        self.title = title
    }

    /// The label of one group: degree, sequence count, tokens and estimated time.
    ///
    ///     PlanTimeline.label(of: group)  // "SP=8 · 2 seqs · 51.2K tok · 812 ms"
    public static func label(of group: Plan.Group) -> String {
        let seqs = group.sequenceIDs.count == 1 ? "1 seq" : "\(group.sequenceIDs.count) seqs"
        return "SP=\(group.degree) · \(seqs) · \(Style.tokens(group.tokens)) tok · \(Style.duration(group.estMS))"
    }

    /// Pixels per millisecond of the time axis.
    public var pixelsPerMS: Double {
        let total = plan.microBatches.reduce(0) { $0 + $1.estMS }
        return total > 0 ? plotWidth / total : 0
    }

    /// The SVG document.
    public func svg() -> String {
        let world = max(1, plan.worldSize)
        let rowHeight = max(4, min(18, 720 / Double(world)))
        let left = 64.0, right = 24.0, top = 64.0, bottom = 70.0
        let plotHeight = rowHeight * Double(world)
        var svg = SVG(width: left + plotWidth + right, height: top + plotHeight + bottom)
        svg.raw("""
            <defs><pattern id="idle" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)">\
            <rect width="6" height="6" fill="#f3f3f3"/><line x1="0" y1="0" x2="0" y2="6" stroke="#c8c8c8" stroke-width="2"/>\
            </pattern></defs>
            """)
        let scale = pixelsPerMS
        let heading = title ?? String(
            format: "%@ plan on %@ (%d GPUs): %d sequences, %d micro-batches, step %@ (lower bound %@, gap %.1f%%)",
            plan.strategy, plan.costModel.name, plan.worldSize, plan.sequences.count, plan.microBatches.count,
            Style.duration(plan.estStepMS), Style.duration(plan.lowerBoundMS), plan.gap * 100)
        svg.text(heading, x: left, y: 22, size: 14, weight: "bold")
        svg.text("Each block is one sequence-parallel group: SP degree, sequences, tokens, estimated time. Hatched: idle GPUs.",
                 x: left, y: 40, size: 11, fill: "#555")

        // Micro-batches, one after another.
        var start = 0.0
        for (m, microBatch) in plan.microBatches.enumerated() {
            let x0 = left + start * scale
            let width = microBatch.estMS * scale
            svg.rect(x: x0, y: top, width: width, height: plotHeight, fill: "url(#idle)", className: "idle",
                     title: "micro-batch \(m): idle")
            for group in microBatch.groups {
                let y = top + Double(group.firstRank) * rowHeight
                let height = Double(group.degree) * rowHeight
                let w = group.estMS * scale
                let label = Self.label(of: group)
                svg.rect(x: x0, y: y, width: w, height: height, fill: Style.color(degree: group.degree), stroke: "#ffffff",
                         className: "group", title: "micro-batch \(m), ranks \(group.firstRank)-\(group.firstRank + group.degree - 1): \(label)",
                         extra: [("data-micro-batch", "\(m)"), ("data-degree", "\(group.degree)"),
                                 ("data-first-rank", "\(group.firstRank)"), ("data-est-ms", String(format: "%.3f", group.estMS))])
                blockText(&svg, group: group, x: x0, y: y, width: w, height: height)
            }
            svg.line(x1: x0, y1: top - 6, x2: x0, y2: top + plotHeight, stroke: "#333", width: 1)
            if width > 60 {
                svg.text("mb \(m) · \(Style.duration(microBatch.estMS))", x: x0 + 3, y: top - 9, size: 10, fill: "#333")
            } else if width > 14 {
                svg.text("\(m)", x: x0 + 3, y: top - 9, size: 10, fill: "#333")
            }
            start += microBatch.estMS
        }
        svg.line(x1: left + start * scale, y1: top - 6, x2: left + start * scale, y2: top + plotHeight, stroke: "#333")

        // Rank axis: node boundaries.
        let perNode = max(1, plan.costModel.gpusPerNode)
        // At most about 16 labelled ticks, however large the world.
        let rankStep = world <= 16 ? 1 : max(1, perNode * max(1, world / perNode / 16), world / 16)
        var rank = 0
        while rank <= world {
            let y = top + Double(rank) * rowHeight
            svg.line(x1: left - 4, y1: y, x2: left, y2: y, stroke: "#333")
            if rank < world { svg.text("\(rank)", x: left - 7, y: y + min(rowHeight, 12) - 1, size: 9, anchor: "end", fill: "#333") }
            if rank % perNode == 0, rank > 0, rank < world {
                svg.line(x1: left, y1: y, x2: left + plotWidth, y2: y, stroke: "#555", width: 0.6, dash: "2,3")
            }
            rank += rankStep
        }
        svg.text("rank", x: 18, y: top + plotHeight / 2, size: 11, anchor: "middle", rotate: -90)

        // Time axis.
        let total = start
        let step = Style.tickStep(span: total, target: 10)
        let axisY = top + plotHeight
        svg.line(x1: left, y1: axisY, x2: left + plotWidth, y2: axisY, stroke: "#333")
        for t in Style.ticks(span: total, step: step) {
            let x = left + t * scale
            svg.line(x1: x, y1: axisY, x2: x, y2: axisY + 4, stroke: "#333")
            svg.text(Style.duration(t), x: x, y: axisY + 16, size: 9, anchor: "middle", fill: "#333")
        }
        svg.text("time (estimated by the cost model)", x: left + plotWidth / 2, y: axisY + 32, size: 11, anchor: "middle")

        // Legend: the degrees used.
        let used = Set(plan.microBatches.flatMap { $0.groups.map(\.degree) }).sorted()
        var lx = left
        let ly = axisY + 48
        for degree in used {
            svg.rect(x: lx, y: ly, width: 12, height: 12, fill: Style.color(degree: degree))
            svg.text("SP=\(degree)", x: lx + 16, y: ly + 10, size: 10)
            lx += 64
        }
        svg.rect(x: lx, y: ly, width: 12, height: 12, fill: "url(#idle)", stroke: "#999")
        svg.text("idle", x: lx + 16, y: ly + 10, size: 10)
        return svg.document
    }

    /// Writes as much of the label inside a block as fits: two lines, one line, or the degree.
    private func blockText(_ svg: inout SVG, group: Plan.Group, x: Double, y: Double, width: Double, height: Double) {
        let seqs = group.sequenceIDs.count == 1 ? "1 seq" : "\(group.sequenceIDs.count) seqs"
        let first = "SP=\(group.degree) · \(seqs)"
        let second = "\(Style.tokens(group.tokens)) tok · \(Style.duration(group.estMS))"
        let charWidth = 5.6  // at font size 10
        if height >= 26, width >= Double(max(first.count, second.count)) * charWidth + 6 {
            svg.text(first, x: x + 3, y: y + 12, size: 10, fill: "#111", className: "label")
            svg.text(second, x: x + 3, y: y + 24, size: 10, fill: "#111", className: "label")
        } else if height >= 9, width >= Double(first.count + second.count + 3) * charWidth * 0.8 + 6 {
            let size = min(10, height - 1)
            svg.text("\(first) · \(second)", x: x + 3, y: y + size, size: size * 0.8 + 1, fill: "#111", className: "label")
        } else if height >= 8, width >= 32 {
            let size = min(9, height - 1)
            svg.text("SP=\(group.degree)", x: x + 2, y: y + size, size: size, fill: "#111", className: "label")
        }
    }
}
