/// The largest inputs FlexSP accepts. Anything larger is refused with an error that names the
/// limit, so that no sum of lengths, rank or capacity can overflow an `Int`, and no single
/// request can occupy the plan service for long. docs/CONTRACT.md lists the same numbers.
public enum Limits {
    /// GPUs in a cluster (2^20).
    public static let maxWorldSize = 1 << 20
    /// Tokens in one sequence (2^40).
    public static let maxSequenceLength = 1 << 40
    /// Sequences in one batch (a `serve` request, a `--batch-size`): 4 a GPU on 16,384 GPUs.
    /// The paper's batches hold 512; 65,536 plan in seconds with `flexsp` on 16,384 GPUs
    /// (docs/CONTRACT.md gives the time and memory), and the limit keeps one request from
    /// holding the plan service for long.
    public static let maxSequences = 65_536
    /// A group's token capacity is clamped here, so huge budgets or tiny per-token costs
    /// cannot overflow a conversion, nor world size x capacity an `Int` (2^42).
    public static let maxTokenCapacity = 1 << 42
    /// Seconds the `milp` strategy may be given per batch.
    public static let maxMILPTimeLimitSeconds = 3_600.0
    /// Bytes of one JSON document or `serve` request line (16 MiB).
    public static let maxDocumentBytes = 16 << 20
    /// Nesting depth of a JSON document.
    public static let maxJSONDepth = 64
}

extension String {
    /// The text with control characters (and Unicode format and separator characters)
    /// written as escapes such as `\u{1b}`; newlines and tabs too unless `keepingLines`.
    public func escapingControlCharacters(keepingLines: Bool = false) -> String {
        var out = ""
        for scalar in unicodeScalars {
            switch scalar {
            case "\n" where keepingLines, "\t" where keepingLines: out.unicodeScalars.append(scalar)
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                let category = scalar.properties.generalCategory
                if scalar.value < 0x20 || (0x7F ..< 0xA0).contains(scalar.value) || category == .format
                    || category == .lineSeparator || category == .paragraphSeparator {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// The text quoted for an error message: control characters escaped and at most `limit`
    /// characters kept, so hostile input echoed in a message cannot move the cursor, ring the
    /// bell or flood the terminal.
    public func quotedForMessage(limit: Int = 60) -> String {
        let kept = unicodeScalars.count > limit ? String(String.UnicodeScalarView(unicodeScalars.prefix(limit))) + "..." : self
        return "'" + kept.escapingControlCharacters() + "'"
    }
}
