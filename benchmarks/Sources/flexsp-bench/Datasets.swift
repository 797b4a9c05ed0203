import FlexSPCore
import Foundation

/// Where the length files are: `../shared/data/lengths/` beside the repository (the paper's own
/// Wikipedia lengths and our GitHub stand-in), else the repository's `data/lengths/*-sample.txt`.
struct Datasets {
    struct Entry {
        /// `wikipedia` or `github_code`.
        var name: String
        var path: String
        var lengths: [Int]
    }

    var entries: [Entry]
    /// True when the full files were missing and the samples were used.
    var usedSamples: Bool
    var directory: String

    static let names = ["wikipedia", "github_code"]

    /// - Parameter repository: the repository root (the folder holding `benchmarks/`).
    init(repository: URL, override: String?) throws {
        let shared = override.map { URL(fileURLWithPath: $0) }
            ?? repository.deletingLastPathComponent().appendingPathComponent("shared/data/lengths")
        let full = Self.names.map { shared.appendingPathComponent("\($0).txt").path }
        if full.allSatisfy({ FileManager.default.isReadableFile(atPath: $0) }) {
            usedSamples = false
            directory = shared.path
            entries = try zip(Self.names, full).map { try Entry(name: $0, path: $1, lengths: Self.read($1)) }
        } else {
            let samples = repository.appendingPathComponent("data/lengths")
            usedSamples = true
            directory = samples.path
            entries = try Self.names.map { name in
                let path = samples.appendingPathComponent("\(name)-sample.txt").path
                return try Entry(name: name, path: path, lengths: Self.read(path))
            }
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
