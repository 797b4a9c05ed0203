import FlexSPCore
import Foundation

/// The length files the benchmarks plan: the repository's `data/lengths/wikipedia.txt` (the
/// paper's own Wikipedia lengths) and `github_code.txt` (our GitHub stand-in), or the files of
/// the same names in a folder given on the command line.
struct Datasets {
    struct Entry {
        /// `wikipedia` or `github_code`.
        var name: String
        var path: String
        var lengths: [Int]
    }

    var entries: [Entry]
    /// The folder as the report names it: `data/lengths` or the folder given.
    var folder: String

    static let names = ["wikipedia", "github_code"]

    /// - Parameters:
    ///   - repository: the repository root (the folder holding `benchmarks/` and `data/`).
    ///   - override: a folder to read instead of `data/lengths`.
    init(repository: URL, override: String?) throws {
        let directory = override.map { URL(fileURLWithPath: $0) }
            ?? repository.appendingPathComponent("data/lengths")
        folder = override ?? "data/lengths"
        entries = try Self.names.map { name in
            let path = directory.appendingPathComponent("\(name).txt").path
            return try Entry(name: name, path: path, lengths: Self.read(path))
        }
    }

    static func read(_ path: String) throws -> [Int] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw BenchError("cannot read length file \(path)")
        }
        return try LengthFile.parse(text, source: path)
    }

    subscript(name: String) -> Entry { entries.first { $0.name == name }! }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension CostModel {
    /// The preset of the paper's cluster nodes at any size (gpt-7b by default).
    static func bench(model: String = "gpt-7b", context: Int, worldSize: Int) throws -> CostModel {
        try CostModel.preset(model: model, cluster: "a100-40g-8x8", maxContext: context, worldSize: worldSize)
    }

    /// The longest raw length the reference rule keeps that the largest group can also hold.
    func longestPlannable(maxContext: Int) -> Int {
        let cap = tokenCapacity(degree: degrees.last!)
        let multiple = 2 * worldSize
        return min(maxContext - multiple, cap / multiple * multiple)
    }
}

extension Workload {
    /// The reference rule (pad to 2N, drop over max context), also dropping what no group of the
    /// cluster can hold, capped at `longest` when given (to keep workloads equal across sizes).
    static func bench(_ entry: Datasets.Entry, costModel: CostModel, maxContext: Int, batchSize: Int,
                      longest: Int? = nil) throws -> Workload {
        let limit = min(longest ?? .max, costModel.longestPlannable(maxContext: maxContext))
        return try Workload(lengths: entry.lengths, source: entry.name, batchSize: batchSize,
                            rule: .init(padMultiple: 2 * costModel.worldSize, maxLength: limit))
    }
}
