import Foundation

/// A minimal SVG writer: elements appended in paint order, serialised as one standalone
/// SVG 1.1 document that browsers and converters (librsvg, ImageMagick) display.
///
///     var svg = SVG(width: 200, height: 100)
///     svg.rect(x: 10, y: 10, width: 50, height: 20, fill: "#4e79a7", title: "a block")
///     svg.text("hello", x: 10, y: 50)
///     let document: String = svg.document
///
/// Every attribute value and text node is escaped, so any label is safe to pass.
struct SVG {
    var width: Double
    var height: Double
    private var body: [String] = []

    init(width: Double, height: Double) {
        self.width = width
        self.height = height
    }

    /// Escapes the five XML special characters and replaces the control characters XML 1.0
    /// forbids (a plan's strategy name is free text) with U+FFFD.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for c in text.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t", "\n", "\r": out.unicodeScalars.append(c)
            default: out.unicodeScalars.append(c.value < 0x20 || c.value == 0xFFFE || c.value == 0xFFFF ? "\u{FFFD}" : c)
            }
        }
        return out
    }

    /// A number as SVG wants it: at most two decimals, no exponent.
    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        let rounded = (value * 100).rounded() / 100
        if rounded == rounded.rounded() { return abs(rounded) < 1e15 ? String(Int(rounded)) : String(format: "%.0f", rounded) }
        return String(format: "%.2f", rounded)
    }

    private static func attributes(_ pairs: [(String, String?)]) -> String {
        pairs.compactMap { key, value in value.map { " \(key)=\"\(escape($0))\"" } }.joined()
    }

    /// Appends a rectangle; `title` becomes its tooltip (a `<title>` child).
    mutating func rect(
        x: Double, y: Double, width: Double, height: Double, fill: String, stroke: String? = nil,
        className: String? = nil, title: String? = nil, extra: [(String, String?)] = []
    ) {
        let attrs = Self.attributes([
            ("class", className), ("x", Self.number(x)), ("y", Self.number(y)),
            ("width", Self.number(max(0, width))), ("height", Self.number(max(0, height))),
            ("fill", fill), ("stroke", stroke), ("stroke-width", stroke == nil ? nil : "0.5"),
        ] + extra)
        if let title {
            body.append("<rect\(attrs)><title>\(Self.escape(title))</title></rect>")
        } else {
            body.append("<rect\(attrs)/>")
        }
    }

    /// Appends a straight line.
    mutating func line(x1: Double, y1: Double, x2: Double, y2: Double, stroke: String, width: Double = 1, dash: String? = nil) {
        body.append("<line" + Self.attributes([
            ("x1", Self.number(x1)), ("y1", Self.number(y1)), ("x2", Self.number(x2)), ("y2", Self.number(y2)),
            ("stroke", stroke), ("stroke-width", Self.number(width)), ("stroke-dasharray", dash),
        ]) + "/>")
    }

    /// Appends a text node. `anchor` is `start`, `middle` or `end`.
    mutating func text(
        _ content: String, x: Double, y: Double, size: Double = 11, anchor: String = "start",
        weight: String? = nil, fill: String = "#222", className: String? = nil, rotate: Double? = nil
    ) {
        let transform = rotate.map { "rotate(\(Self.number($0)) \(Self.number(x)) \(Self.number(y)))" }
        body.append("<text" + Self.attributes([
            ("class", className), ("x", Self.number(x)), ("y", Self.number(y)), ("font-size", Self.number(size)),
            ("text-anchor", anchor), ("font-weight", weight), ("fill", fill), ("transform", transform),
        ]) + ">\(Self.escape(content))</text>")
    }

    /// Appends raw markup (already escaped): definitions such as patterns.
    mutating func raw(_ markup: String) {
        body.append(markup)
    }

    /// The whole document, with an XML declaration and a white background.
    var document: String {
        var lines = [
            #"<?xml version="1.0" encoding="UTF-8"?>"#,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"\(Self.number(width))\" height=\"\(Self.number(height))\" viewBox=\"0 0 \(Self.number(width)) \(Self.number(height))\" font-family=\"Helvetica, Arial, sans-serif\">",
            "<rect x=\"0\" y=\"0\" width=\"\(Self.number(width))\" height=\"\(Self.number(height))\" fill=\"#ffffff\"/>",
        ]
        lines += body
        lines.append("</svg>")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Colours and number formats shared by the charts.
enum Style {
    /// One colour per power-of-two degree (1, 2, 4, ... 1024), light to dark as groups grow.
    static func color(degree: Int) -> String {
        let palette = ["#9ecae1", "#6baed6", "#4e9f6f", "#e6a23c", "#d9534f", "#8e6bbf", "#5b4a8b", "#3f7f93", "#7f7f7f", "#b5651d", "#2f4f4f"]
        let index = degree <= 1 ? 0 : Int(log2(Double(degree)).rounded())
        return palette[min(index, palette.count - 1)]
    }

    /// Milliseconds as `812 ms` or `3.11 s`.
    static func duration(_ ms: Double) -> String {
        ms >= 10_000 ? String(format: "%.1f s", ms / 1000) : ms >= 1000 ? String(format: "%.2f s", ms / 1000) : String(format: "%.0f ms", ms)
    }

    /// Tokens as `812`, `51.2K` or `1.2M`.
    static func tokens(_ count: Int) -> String {
        count >= 1_000_000 ? String(format: "%.1fM", Double(count) / 1e6)
            : count >= 1000 ? String(format: "%.1fK", Double(count) / 1000) : "\(count)"
    }

    /// The tick positions 0, step, 2 step, ... up to `span`: at most 100, and none when the
    /// step is not a positive finite number (a step so small that adding it to a tick
    /// leaves the tick unchanged would otherwise never end).
    static func ticks(span: Double, step: Double) -> [Double] {
        guard step > 0, step.isFinite, span.isFinite, span >= 0 else { return [] }
        let count = min(100, (span / step * (1 + 1e-9)).rounded(.down))
        guard count.isFinite, count >= 0 else { return [] }
        return (0 ... Int(count)).map { Double($0) * step }
    }

    /// Round tick spacing for an axis of `span` units with about `target` ticks.
    static func tickStep(span: Double, target: Int) -> Double {
        guard span > 0 else { return 1 }
        let raw = span / Double(max(1, target))
        let magnitude = pow(10, floor(log10(raw)))
        for m in [1.0, 2, 2.5, 5, 10] where m * magnitude >= raw { return m * magnitude }
        return 10 * magnitude
    }
}
