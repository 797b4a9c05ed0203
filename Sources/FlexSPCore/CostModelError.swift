/// Why a cost model or a preset request cannot be used.
public enum CostModelError: Error, Equatable, CustomStringConvertible {
    /// A field of the document is missing, mistyped or out of range.
    case invalidField(String, String)
    /// The document is not JSON of the cost-model form.
    case malformed(String)
    /// The document's version is not one this build reads.
    case unsupportedVersion(Int)
    /// No preset has this name.
    case unknownPreset(kind: String, name: String, known: [String])
    /// A preset was asked for a setting it does not cover.
    case unsupportedSetting(String)

    public var description: String {
        switch self {
        case .invalidField(let field, let why): "cost model field '\(field)' \(why)"
        case .malformed(let why): "cost model is not valid JSON of the contract's form: \(why)"
        case .unsupportedVersion(let v): "cost model version \(v) is not supported (this build reads version \(CostModel.schemaVersion))"
        case .unknownPreset(let kind, let name, let known): "unknown \(kind) '\(name)'; known: \(known.joined(separator: ", "))"
        case .unsupportedSetting(let why): why
        }
    }
}
