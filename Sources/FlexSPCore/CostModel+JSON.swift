import Foundation

/// The cost-model document of DESIGN.md (version 1), shared with the Python runtime.
extension CostModel: Codable {
    enum CodingKeys: String, CodingKey {
        case version, name
        case worldSize = "world_size"
        case gpusPerNode = "gpus_per_node"
        case memoryBudgetMB = "memory_budget_mb"
        case modelStatesMB = "model_states_mb"
        case activationMBPerToken = "activation_mb_per_token"
        case alpha1 = "alpha1_ms"
        case alpha2 = "alpha2_ms"
        case beta1 = "beta1_ms"
        case a2aMBPerToken = "a2a_mb_per_token"
        case a2aBandwidthGBps = "a2a_bandwidth_gbps"
        case maxDegree = "max_degree"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let version = try c.decode(Int.self, forKey: .version)
        guard version == Self.schemaVersion else { throw CostModelError.unsupportedVersion(version) }
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? "custom"
        worldSize = try c.decode(Int.self, forKey: .worldSize)
        gpusPerNode = try c.decode(Int.self, forKey: .gpusPerNode)
        memoryBudgetMB = try c.decode(Double.self, forKey: .memoryBudgetMB)
        modelStatesMB = try c.decode(Double.self, forKey: .modelStatesMB)
        activationMBPerToken = try c.decode(Double.self, forKey: .activationMBPerToken)
        alpha1 = try c.decode(Double.self, forKey: .alpha1)
        alpha2 = try c.decode(Double.self, forKey: .alpha2)
        beta1 = try c.decode(Double.self, forKey: .beta1)
        a2aMBPerToken = try c.decode(Double.self, forKey: .a2aMBPerToken)
        let bandwidths = try c.decode([String: Double].self, forKey: .a2aBandwidthGBps)
        var parsed: [Int: Double] = [:]
        for (key, value) in bandwidths {
            guard let degree = Int(key) else {
                throw CostModelError.invalidField("a2a_bandwidth_gbps", "key '\(key)' is not an integer degree")
            }
            parsed[degree] = value
        }
        a2aBandwidthGBps = parsed
        maxDegree = try c.decode(Int.self, forKey: .maxDegree)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.schemaVersion, forKey: .version)
        try c.encode(name, forKey: .name)
        try c.encode(worldSize, forKey: .worldSize)
        try c.encode(gpusPerNode, forKey: .gpusPerNode)
        try c.encode(memoryBudgetMB, forKey: .memoryBudgetMB)
        try c.encode(modelStatesMB, forKey: .modelStatesMB)
        try c.encode(activationMBPerToken, forKey: .activationMBPerToken)
        try c.encode(alpha1, forKey: .alpha1)
        try c.encode(alpha2, forKey: .alpha2)
        try c.encode(beta1, forKey: .beta1)
        try c.encode(a2aMBPerToken, forKey: .a2aMBPerToken)
        let keyed = Dictionary(uniqueKeysWithValues: a2aBandwidthGBps.map { (String($0.key), $0.value) })
        try c.encode(keyed, forKey: .a2aBandwidthGBps)
        try c.encode(maxDegree, forKey: .maxDegree)
    }

    /// Reads and validates a cost-model document.
    ///
    /// - Throws: `CostModelError` naming the field at fault.
    public init(json data: Data) throws(CostModelError) {
        do {
            self = try JSONDecoder().decode(CostModel.self, from: data)
        } catch let error as CostModelError {
            throw error
        } catch let error as DecodingError {
            throw CostModelError.describing(error)
        } catch {
            throw .malformed("\(error)")
        }
        try validate()
    }

    /// The document as pretty-printed JSON with sorted keys.
    public func jsonData() -> Data {
        // Encoding plain numbers and strings cannot fail.
        try! JSONEncoder.flexsp.encode(self)
    }
}

extension CostModelError {
    /// Turns a decoder's error into one that names the field at fault.
    static func describing(_ error: DecodingError) -> CostModelError {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, _): return .invalidField(key.stringValue, "is missing")
        case .typeMismatch(let type, let context): return .invalidField(path(context), "should be of type \(type)")
        case .valueNotFound(let type, let context): return .invalidField(path(context), "should be a \(type), found null")
        case .dataCorrupted(let context): return .malformed(context.debugDescription)
        @unknown default: return .malformed("\(error)")
        }
    }
}

extension JSONEncoder {
    /// The encoder for every document FlexSP writes: sorted keys so output is reproducible.
    public static var flexsp: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
