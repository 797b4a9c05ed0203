import Foundation

/// A Markdown table built row by row.
///
///     var table = MarkdownTable(["strategy", "mean step (ms)"])
///     table.append(["flexsp", "3108.0"])
///     table.text  // "| strategy | mean step (ms) |\n|---|---:|\n| flexsp | 3108.0 |"
struct MarkdownTable {
    var header: [String]
    var rows: [[String]] = []
    /// Columns (by index) to align right; the others align left.
    var numeric: Set<Int>

    init(_ header: [String], numeric: Set<Int>? = nil) {
        self.header = header
        self.numeric = numeric ?? Set(1 ..< header.count)
    }

    mutating func append(_ row: [String]) { rows.append(row) }

    var text: String {
        let align = header.indices.map { numeric.contains($0) ? "---:" : "---" }
        return ([header, align] + rows).map { "| " + $0.joined(separator: " | ") + " |" }.joined(separator: "\n")
    }
}

/// Number formats of the report.
enum Format {
    static func ms(_ value: Double) -> String { String(format: "%.0f", value) }
    static func seconds(_ ms: Double) -> String { String(format: "%.2f", ms / 1000) }
    static func ratio(_ value: Double) -> String { value.isFinite ? String(format: "%.2fx", value) : "-" }
    static func percent(_ value: Double) -> String { value.isFinite ? String(format: "%.1f%%", value * 100) : "-" }
    static func wall(_ ms: Double) -> String {
        ms >= 1000 ? String(format: "%.2f s", ms / 1000) : ms >= 10 ? String(format: "%.0f ms", ms) : String(format: "%.2f ms", ms)
    }
    static func megabytes(_ kilobytes: Int) -> String { String(format: "%.0f MB", Double(kilobytes) / 1024) }

    /// A plan shape as the paper writes it: `<32,16,8,8>`, or run-length `<8 x 8>`, `<8 x 2, 1 x 48>`.
    static func shape(_ degrees: [Int]) -> String {
        var runs: [(degree: Int, count: Int)] = []
        for d in degrees.sorted(by: >) {
            if let last = runs.last, last.degree == d { runs[runs.count - 1].count += 1 } else { runs.append((d, 1)) }
        }
        if degrees.count <= 6 { return "<" + degrees.sorted(by: >).map(String.init).joined(separator: ",") + ">" }
        return "<" + runs.map { $0.count == 1 ? "\($0.degree)" : "\($0.degree) x \($0.count)" }.joined(separator: ", ") + ">"
    }
}
