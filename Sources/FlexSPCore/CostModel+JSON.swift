import Foundation

/// The cost-model document of docs/DESIGN.md (version 1), shared with the Python runtime.
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
        a2aBandwidthGBps = try Self.degreeMap(c.decode([String: Double].self, forKey: .a2aBandwidthGBps))
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
        guard data.count <= Limits.maxDocumentBytes else {
            throw .malformed("the document has \(data.count) bytes, more than the limit of \(Limits.maxDocumentBytes)")
        }
        do { try StrictJSON.check(data) } catch { throw .malformed("\(error)") }
        do {
            self = try JSONDecoder().decode(CostModel.self, from: data)
        } catch let error as CostModelError {
            throw error
        } catch let error as DecodingError {
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty, let (field, value) = DecodingFault.nonInteger(in: data) {
                throw CostModelError.invalidField(field, "should be an integer in range, got \(value)")
            }
            throw CostModelError.describing(error)
        } catch {
            throw .malformed("the document could not be decoded")
        }
        try validate()
    }

    /// Bandwidth keys are decimal degrees (an optional sign, then digits: "2", "+2", "02"); two
    /// keys naming the same degree are refused, so which one counts never depends on order.
    static func degreeMap(_ keyed: [String: Double]) throws(CostModelError) -> [Int: Double] {
        var parsed: [Int: Double] = [:]
        var spelled: [Int: String] = [:]
        for key in keyed.keys.sorted() {
            let body = key.hasPrefix("+") || key.hasPrefix("-") ? key.dropFirst() : Substring(key)
            guard !body.isEmpty, body.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                  let degree = Int(key) else {
                throw CostModelError.invalidField("a2a_bandwidth_gbps", "key \(key.quotedForMessage()) is not an integer degree")
            }
            if let other = spelled[degree] {
                throw CostModelError.invalidField(
                    "a2a_bandwidth_gbps", "keys \(other.quotedForMessage()) and \(key.quotedForMessage()) both name degree \(degree)")
            }
            spelled[degree] = key
            parsed[degree] = keyed[key]
        }
        return parsed
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
        let (field, why) = DecodingFault.describe(error)
        return field.isEmpty ? .malformed(why) : .invalidField(field, why)
    }
}
