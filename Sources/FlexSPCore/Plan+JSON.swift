import Foundation

/// The plan document of docs/DESIGN.md (version 1).
extension Plan: Codable {
    enum CodingKeys: String, CodingKey {
        case version, strategy
        case worldSize = "world_size"
        case costModel = "cost_model"
        case sequences
        case microBatches = "micro_batches"
        case estStepMS = "est_step_ms"
        case lowerBoundMS = "lower_bound_ms"
        case solver
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let version = try c.decode(Int.self, forKey: .version)
        guard version == Self.schemaVersion else { throw PlanDecodingError.unsupportedVersion(version) }
        strategy = try c.decode(String.self, forKey: .strategy)
        worldSize = try c.decode(Int.self, forKey: .worldSize)
        costModel = try c.decode(CostModel.self, forKey: .costModel)
        sequences = try c.decode([Sequence].self, forKey: .sequences)
        microBatches = try c.decode([MicroBatch].self, forKey: .microBatches)
        estStepMS = try c.decode(Double.self, forKey: .estStepMS)
        lowerBoundMS = try c.decode(Double.self, forKey: .lowerBoundMS)
        solver = try c.decode(Solver.self, forKey: .solver)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.schemaVersion, forKey: .version)
        try c.encode(strategy, forKey: .strategy)
        try c.encode(worldSize, forKey: .worldSize)
        try c.encode(costModel, forKey: .costModel)
        try c.encode(sequences, forKey: .sequences)
        try c.encode(microBatches, forKey: .microBatches)
        try c.encode(estStepMS, forKey: .estStepMS)
        try c.encode(lowerBoundMS, forKey: .lowerBoundMS)
        try c.encode(solver, forKey: .solver)
    }

    /// Reads a plan document; the error names the field at fault. Rules are checked separately
    /// by `Simulator.violations(in:)`.
    public init(json data: Data) throws(PlanDecodingError) {
        guard data.count <= Limits.maxDocumentBytes else {
            throw .malformed("the document has \(data.count) bytes, more than the limit of \(Limits.maxDocumentBytes)")
        }
        do { try StrictJSON.check(data) } catch { throw .malformed("\(error)") }
        do {
            self = try JSONDecoder().decode(Plan.self, from: data)
        } catch let error as PlanDecodingError {
            throw error
        } catch let error as CostModelError {
            throw .costModel(error)
        } catch let error as DecodingError {
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty, let (field, value) = DecodingFault.nonInteger(in: data) {
                throw .invalidField(field: field, why: "should be an integer in range, got \(value)")
            }
            throw .describing(error)
        } catch {
            throw .malformed("the document could not be decoded")
        }
        do { try costModel.validate() } catch { throw .costModel(error) }
    }

    /// The document as compact JSON with sorted keys.
    public func jsonData() -> Data {
        try! JSONEncoder.flexsp.encode(self)
    }
}

/// Why a plan document could not be read.
public enum PlanDecodingError: Error, Equatable, CustomStringConvertible {
    case unsupportedVersion(Int)
    case missingField(String)
    case invalidField(field: String, why: String)
    case malformed(String)
    case costModel(CostModelError)

    static func describing(_ error: DecodingError) -> PlanDecodingError {
        if case .keyNotFound(let key, let context) = error {
            return .missingField(DecodingFault.path(context.codingPath + [key]))
        }
        let (field, why) = DecodingFault.describe(error)
        return field.isEmpty ? .malformed(why) : .invalidField(field: field, why: why)
    }

    public var description: String {
        switch self {
        case .unsupportedVersion(let v): "plan version \(v) is not supported (this build reads version \(Plan.schemaVersion))"
        case .missingField(let field): "plan field '\(field)' is missing"
        case .invalidField(let field, let why): "plan field '\(field)' \(why)"
        case .malformed(let why): "plan is not valid JSON: \(why)"
        case .costModel(let error): "plan's cost_model: \(error)"
        }
    }
}
