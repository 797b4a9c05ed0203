/// A length file: one sequence length (tokens) per line, the format of `data/lengths/`.
///
/// The grammar, shared with the Python runtime (docs/CONTRACT.md): lines are split at `\n`; on
/// each line, `#` starts a comment that runs to the end of the line; spaces, tabs and a
/// carriage return around the value are ignored; a line left empty is skipped; anything else
/// must be a decimal integer (an optional sign, then the digits 0-9) between 1 and
/// `Limits.maxSequenceLength`. A file with no lengths is an error.
public enum LengthFile {
    /// Parses a length file's text.
    ///
    /// - Parameter source: the file's name, used in error messages.
    /// - Throws: `WorkloadError` naming the file and the line at fault.
    /// - Complexity: O(n) in the text's length.
    public static func parse(_ text: String, source: String) throws(WorkloadError) -> [Int] {
        var lengths: [Int] = []
        var lineNumber = 0
        // Byte-level: a million-line file parses in milliseconds.
        for whole in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = whole.firstIndex(of: UInt8(ascii: "#")).map { whole[..<$0] } ?? whole
            let field = line.drop { isSpace($0) }.reversed().drop { isSpace($0) }.reversed()
            if field.isEmpty { continue }
            let digits = field.first == UInt8(ascii: "-") || field.first == UInt8(ascii: "+") ? field.dropFirst() : field[...]
            guard !digits.isEmpty, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                throw .badLine(source: source, line: lineNumber, text: String(decoding: field, as: UTF8.self))
            }
            let negative = field.first == UInt8(ascii: "-")
            // Leading zeros carry no value; past 13 significant digits the number is over the limit.
            let significant = digits.drop { $0 == UInt8(ascii: "0") }
            var value = 0
            for byte in significant.prefix(14) { value = value * 10 + Int(byte - UInt8(ascii: "0")) }
            if negative { value = -value }
            guard value > 0 else { throw .nonPositiveLength(source: source, line: lineNumber, value: value) }
            guard significant.count <= 13, value <= Limits.maxSequenceLength else {
                throw .lengthTooLarge(source: source, line: lineNumber, text: String(decoding: field, as: UTF8.self))
            }
            lengths.append(value)
        }
        guard !lengths.isEmpty else { throw .empty(source: source) }
        return lengths
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r")
    }
}

/// Why a workload cannot be built or planned.
public enum WorkloadError: Error, Equatable, CustomStringConvertible {
    case badLine(source: String, line: Int, text: String)
    case nonPositiveLength(source: String, line: Int, value: Int)
    case lengthTooLarge(source: String, line: Int, text: String)
    case empty(source: String)
    case nothingLeft(source: String, dropped: Int, maxLength: Int)
    case notEnoughBatches(source: String, requested: Int, available: Int, batchSize: Int, dropped: Int)
    case invalidBatchSize(Int)

    public var description: String {
        switch self {
        case .badLine(let source, let line, let text):
            "\(source):\(line): \(text.quotedForMessage(limit: 40)) is not a sequence length (expected one positive integer per line; '#' starts a comment)"
        case .lengthTooLarge(let source, let line, let text):
            "\(source):\(line): length \(text.quotedForMessage(limit: 40)) is over the limit of \(Limits.maxSequenceLength) tokens"
        case .nonPositiveLength(let source, let line, let value):
            "\(source):\(line): length \(value) is not positive"
        case .empty(let source):
            "\(source): no sequence lengths (the file is empty)"
        case .nothingLeft(let source, let dropped, let maxLength):
            "\(source): all \(dropped) sequences are longer than the \(maxLength)-token limit"
        case .notEnoughBatches(let source, let requested, let available, let batchSize, let dropped):
            "\(source): \(requested) batches of \(batchSize) requested, but the file holds only \(available) full batches"
                + (dropped > 0 ? " after dropping \(dropped) sequences over the max-context limit (--raw keeps them)" : "")
        case .invalidBatchSize(let size):
            "batch size must be positive, got \(size)"
        }
    }
}
