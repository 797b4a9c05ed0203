import FlexSPCore

/// Why a batch cannot be planned.
public enum PlanningError: Error, Equatable, CustomStringConvertible {
    /// A sequence is longer than the largest allowed group can hold.
    case sequenceTooLong(id: Int, length: Int, capacity: Int, degree: Int)
    /// The batch has no sequences.
    case emptyBatch
    /// A sequence has no tokens or a negative count.
    case nonPositiveLength(id: Int, length: Int)
    /// A strategy name that is not known.
    case unknownStrategy(String)
    /// `static:D` with a degree the cost model does not allow.
    case invalidStaticDegree(Int, allowed: [Int])
    /// No plan obeying the rules exists for this batch under the strategy.
    case infeasible(strategy: String, reason: String)
    /// The MILP solver failed in a way that left no usable plan.
    case solverFailure(String)

    public var description: String {
        switch self {
        case .sequenceTooLong(let id, let length, let capacity, let degree):
            "sequence \(id) has \(length) tokens, more than the \(capacity) a group of the largest degree (\(degree)) can hold; shorten or drop it, or plan for more GPUs or memory"
        case .emptyBatch:
            "the batch has no sequences"
        case .nonPositiveLength(let id, let length):
            "sequence \(id) has length \(length); lengths must be positive"
        case .unknownStrategy(let name):
            "unknown strategy '\(name)'; known: \(Strategy.names.joined(separator: ", ")), static:D"
        case .invalidStaticDegree(let d, let allowed):
            "static:\(d) is not a usable degree; allowed degrees are \(allowed.map(String.init).joined(separator: ", "))"
        case .infeasible(let strategy, let reason):
            "\(strategy): no valid plan: \(reason)"
        case .solverFailure(let why):
            "MILP solver failed: \(why)"
        }
    }
}
