import Foundation

/// Every built-in model and cluster preset as one document: what `flexsp presets --json`
/// prints, so that the Python runtime reads the presets rather than keeping its own copy.
///
///     let data = PresetCatalog().jsonData()   // {"clusters": [...], "models": [...], ...}
public struct PresetCatalog: Hashable, Sendable, Codable {
    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version"
        case models, clusters
    }

    /// A model preset's constants, and the figures derived from them.
    public struct Model: Hashable, Sendable, Codable {
        enum CodingKeys: String, CodingKey {
            case name, layers, hidden, source
            case queryHeads = "query_heads"
            case kvHeads = "kv_heads"
            case maxDegree = "max_degree"
            case alpha1 = "alpha1_ms"
            case alpha2 = "alpha2_ms"
            case beta1 = "beta1_ms"
            case activationMBPerToken = "activation_mb_per_token"
            case a2aMBPerToken = "a2a_mb_per_token"
            case billionsOfParameters = "billions_of_parameters"
        }

        /// The parameter count (billions) at a maximum context.
        public struct Size: Hashable, Sendable, Codable {
            enum CodingKeys: String, CodingKey {
                case maxContext = "max_context"
                case billions
            }

            public var maxContext: Int
            public var billions: Double
        }

        public var name: String
        public var layers: Int
        public var hidden: Int
        public var queryHeads: Int
        public var kvHeads: Int
        public var maxDegree: Int
        public var alpha1: Double
        public var alpha2: Double
        public var beta1: Double
        public var activationMBPerToken: Double
        public var a2aMBPerToken: Double
        public var billionsOfParameters: [Size]
        public var source: String

        public init(_ m: ModelPreset) {
            name = m.name
            layers = m.layers
            hidden = m.hidden
            queryHeads = m.queryHeads
            kvHeads = m.kvHeads
            maxDegree = m.maxDegree
            alpha1 = m.alpha1
            alpha2 = m.alpha2
            beta1 = m.beta1
            activationMBPerToken = m.activationMBPerToken
            a2aMBPerToken = m.a2aMBPerToken
            billionsOfParameters = m.billionsOfParameters.map { Size(maxContext: $0.context, billions: $0.billions) }
            source = m.source
        }
    }

    /// A cluster preset's measurements; bandwidths keyed by degree as a decimal string.
    public struct Cluster: Hashable, Sendable, Codable {
        enum CodingKeys: String, CodingKey {
            case name, source
            case worldSize = "world_size"
            case gpusPerNode = "gpus_per_node"
            case memoryBudgetMB = "memory_budget_mb"
            case a2aBandwidthGBps = "a2a_bandwidth_gbps"
        }

        public var name: String
        public var worldSize: Int
        public var gpusPerNode: Int
        public var memoryBudgetMB: Double
        public var a2aBandwidthGBps: [String: Double]
        public var source: String

        public init(_ c: ClusterPreset) {
            name = c.name
            worldSize = c.worldSize
            gpusPerNode = c.gpusPerNode
            memoryBudgetMB = c.memoryBudgetMB
            a2aBandwidthGBps = Dictionary(uniqueKeysWithValues: c.a2aBandwidthGBps.map { (String($0.key), $0.value) })
            source = c.source
        }
    }

    /// The version of the cost-model document these constants feed.
    public var schemaVersion: Int
    public var models: [Model]
    public var clusters: [Cluster]

    /// The catalogue of every built-in preset, in the order `flexsp presets` lists them.
    public init(models: [ModelPreset] = ModelPreset.all, clusters: [ClusterPreset] = ClusterPreset.all) {
        schemaVersion = CostModel.schemaVersion
        self.models = models.map(Model.init)
        self.clusters = clusters.map(Cluster.init)
    }

    /// The catalogue as pretty-printed JSON with sorted keys.
    public func jsonData() -> Data {
        let encoder = JSONEncoder.flexsp
        encoder.outputFormatting.insert(.prettyPrinted)
        // Encoding plain numbers and strings cannot fail.
        return try! encoder.encode(self)
    }
}
