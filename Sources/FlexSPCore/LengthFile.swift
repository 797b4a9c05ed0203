/// A length file: one sequence length (tokens) per line, the format of `data/lengths/`.
public enum LengthFile {
    /// Parses a length file's text. Blank lines are ignored; anything else must be a positive
    /// integer.
    ///
    /// - Parameter source: the file's name, used in error messages.
    /// - Throws: `WorkloadError` naming the file and the line at fault.
    /// - Complexity: O(n) in the text's length.
    public static func parse(_ text: String, source: String) throws(WorkloadError) -> [Int] {
        var lengths: [Int] = []
        var lineNumber = 0
        // Byte-level: a million-line file parses in milliseconds.
        for line in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let field = line.drop { isSpace($0) }.reversed().drop { isSpace($0) }.reversed()
            if field.isEmpty { continue }
            var value = 0
            var valid = field.count <= 18
            var negative = false
            for (offset, byte) in field.enumerated() {
                if offset == 0 && (byte == UInt8(ascii: "-") || byte == UInt8(ascii: "+")) && field.count > 1 {
                    negative = byte == UInt8(ascii: "-")
                    continue
                }
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { valid = false; break }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            guard valid else {
                let text = String(decoding: field.prefix(40), as: UTF8.self)
                throw .badLine(source: source, line: lineNumber, text: text)
            }
            if negative { value = -value }
            guard value > 0 else { throw .nonPositiveLength(source: source, line: lineNumber, value: value) }
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
    case empty(source: String)
    case nothingLeft(source: String, dropped: Int, maxLength: Int)
    case notEnoughBatches(source: String, requested: Int, available: Int, batchSize: Int, dropped: Int)
    case invalidBatchSize(Int)

    public var description: String {
        switch self {
        case .badLine(let source, let line, let text):
            "\(source):\(line): '\(text)' is not a sequence length (expected one positive integer per line)"
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
