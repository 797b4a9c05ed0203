import Foundation

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
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let field = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if field.isEmpty { continue }
            guard let value = Int(field) else {
                throw .badLine(source: source, line: lineNumber, text: String(field.prefix(40)))
            }
            guard value > 0 else { throw .nonPositiveLength(source: source, line: lineNumber, value: value) }
            lengths.append(value)
        }
        guard !lengths.isEmpty else { throw .empty(source: source) }
        return lengths
    }
}

/// Why a workload cannot be built or planned.
public enum WorkloadError: Error, Equatable, CustomStringConvertible {
    case badLine(source: String, line: Int, text: String)
    case nonPositiveLength(source: String, line: Int, value: Int)
    case empty(source: String)
    case nothingLeft(source: String, dropped: Int, maxLength: Int)
    case notEnoughBatches(source: String, requested: Int, available: Int, batchSize: Int)
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
        case .notEnoughBatches(let source, let requested, let available, let batchSize):
            "\(source): \(requested) batches of \(batchSize) requested, but the file holds only \(available) full batches"
        case .invalidBatchSize(let size):
            "batch size must be positive, got \(size)"
        }
    }
}
