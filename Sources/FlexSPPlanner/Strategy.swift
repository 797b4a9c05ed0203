import Foundation
import FlexSPCore

/// A way to plan a batch. Every strategy emits the same plan document and is scored by the
/// same simulator (docs/DESIGN.md, "Strategies the planner offers").
public enum Strategy: Hashable, Sendable, CustomStringConvertible {
    /// Heterogeneous groups per micro-batch: our solver.
    case flexsp
    /// The paper's bucketed MILP solved by COIN-OR CBC: the exact reference.
    case milp
    /// The best single degree per batch (the paper's FlexSP-BatchAda).
    case batchAdaptive
    /// One degree for every batch, best-fit packing; nil: the smallest degree that holds the
    /// dataset's longest sequence.
    case staticDegree(Int?)
    /// Megatron-Core's dynamic context parallelism (its packing-aware scheduler).
    case megatronDCP

    /// Names as the command line and the plan service accept them.
    public static let names = ["flexsp", "milp", "batch-ada", "static", "megatron-dcp"]

    /// Parses `flexsp`, `milp`, `batch-ada`, `static`, `static:D` or `megatron-dcp`.
    public init(parsing text: String) throws(PlanningError) {
        let name = text.trimmingCharacters(in: .whitespaces).lowercased()
        switch name {
        case "flexsp": self = .flexsp
        case "milp": self = .milp
        case "batch-ada", "batchada": self = .batchAdaptive
        case "static": self = .staticDegree(nil)
        case "megatron-dcp", "dcp": self = .megatronDCP
        default:
            if name.hasPrefix("static:"), let d = Int(name.dropFirst("static:".count)), d > 0 {
                self = .staticDegree(d)
            } else {
                throw .unknownStrategy(text)
            }
        }
    }

    public var description: String {
        switch self {
        case .flexsp: "flexsp"
        case .milp: "milp"
        case .batchAdaptive: "batch-ada"
        case .staticDegree(let d): d.map { "static:\($0)" } ?? "static"
        case .megatronDCP: "megatron-dcp"
        }
    }
}
