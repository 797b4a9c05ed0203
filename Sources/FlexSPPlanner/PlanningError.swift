import FlexSPCore

/// Why a batch cannot be planned.
public enum PlanningError: Error, Equatable, CustomStringConvertible {
    /// A sequence is longer than the largest allowed group can hold (on `worldSize` GPUs).
    case sequenceTooLong(id: Int, length: Int, capacity: Int, degree: Int, worldSize: Int)
    /// The batch has no sequences.
    case emptyBatch
    /// A sequence has no tokens or a negative count.
    case nonPositiveLength(id: Int, length: Int)
    /// A sequence is longer than `Limits.maxSequenceLength`.
    case lengthTooLarge(id: Int, length: Int)
    /// The batch holds more than `Limits.maxSequences` sequences.
    case tooManySequences(Int)
    /// The cost model gives a time too large to represent (an overflow to infinity).
    case estimateOverflow
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
        case .sequenceTooLong(let id, let length, let capacity, let degree, let worldSize):
            "sequence \(id) has \(length) tokens, more than the \(capacity) a group of the largest degree (\(degree)) can hold; "
                // Past the model's largest degree (its max_degree) more GPUs add groups, not room in one.
                + (degree < worldSize
                    ? "the cost model allows no degree above \(degree) (max_degree), so more GPUs do not help: shorten or drop it, or give each GPU more memory"
                    : "shorten or drop it, or plan for more GPUs or memory")
        case .emptyBatch:
            "the batch has no sequences"
        case .nonPositiveLength(let id, let length):
            "sequence \(id) has length \(length); lengths must be positive"
        case .lengthTooLarge(let id, let length):
            "sequence \(id) has length \(length), over the limit of \(Limits.maxSequenceLength) tokens"
        case .tooManySequences(let count):
            "the batch has \(count) sequences, more than the limit of \(Limits.maxSequences) per batch; split it into several requests"
        case .estimateOverflow:
            "the cost model's constants make a step time too large to represent; check alpha1_ms, alpha2_ms, beta1_ms, a2a_mb_per_token and the bandwidths"
        case .unknownStrategy(let name):
            "unknown strategy \(name.quotedForMessage()); known: \(Strategy.names.joined(separator: ", ")), static:D"
        case .invalidStaticDegree(let d, let allowed):
            "static:\(d) is not a usable degree; allowed degrees are \(allowed.map(String.init).joined(separator: ", "))"
        case .infeasible(let strategy, let reason):
            "\(strategy): no valid plan: \(reason)"
        case .solverFailure(let why):
            "MILP solver failed: \(why)"
        }
    }
}
