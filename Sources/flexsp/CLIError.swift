/// Errors of the command line itself (files it cannot read or write).
enum CLIError: Error, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case unwritable(path: String, reason: String)
    case invalidPlan(path: String, violations: [String])
    case invalidDocument(path: String, reason: String)

    var description: String {
        switch self {
        case .unreadable(let path, let reason): "cannot read \(path): \(reason)"
        case .unwritable(let path, let reason): "cannot write \(path): \(reason)"
        case .invalidDocument(let path, let reason): "\(path): \(reason)"
        case .invalidPlan(let path, let violations):
            "\(path) breaks \(violations.count) rule(s):\n" + violations.map { "  - \($0)" }.joined(separator: "\n")
        }
    }
}
