/// Errors of the command line itself (files it cannot read or write).
enum CLIError: Error, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case unwritable(path: String, reason: String)
    case invalidPlan(path: String, violations: [String])
    case invalidDocument(path: String, reason: String)
    /// The padding rule (a multiple of 2 x world size) leaves no length under the max context.
    case paddingExceedsContext(worldSize: Int, maxContext: Int)
    /// The padding rule's length limit (max context - 2 x world size) drops every sequence.
    case allDroppedByPadding(source: String, count: Int, worldSize: Int, maxContext: Int)

    var description: String {
        switch self {
        case .unreadable(let path, let reason): "cannot read \(path): \(reason)"
        case .unwritable(let path, let reason): "cannot write \(path): \(reason)"
        case .invalidDocument(let path, let reason): "\(path): \(reason)"
        case .paddingExceedsContext(let worldSize, let maxContext):
            "the padding rule pads every sequence to a multiple of 2 x --world-size (\(2 * worldSize) tokens on \(worldSize) GPUs), "
                + "which leaves no room under --max-context (\(maxContext) tokens): give a --max-context above \(2 * worldSize), "
                + "a smaller --world-size, or --raw to plan the lengths as they are"
        case .allDroppedByPadding(let source, let count, let worldSize, let maxContext):
            "\(source): all \(count) sequences are longer than \(maxContext - 2 * worldSize) tokens, the longest the padding rule keeps "
                + "(--max-context \(maxContext) minus 2 x --world-size = \(2 * worldSize)): give a larger --max-context, a smaller --world-size, "
                + "or --raw to plan the lengths as they are"
        case .invalidPlan(let path, let violations):
            "\(path) breaks \(violations.count) rule(s):\n" + violations.map { "  - \($0)" }.joined(separator: "\n")
        }
    }
}
