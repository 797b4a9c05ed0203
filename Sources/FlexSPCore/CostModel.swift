/// The per-group time and memory model of FlexSP (docs/PAPER.md section 2, eq. 11-14).
///
/// For a sequence-parallel group of degree `d` holding sequences `S`:
///
///     time(S, d)   = beta1 + sum over s in S of [(alpha1 s^2 + alpha2 s) / d + a2a(s, d)]
///     a2a(s, d)    = 0 for d = 1, else a2aMBPerToken * s / (d * bandwidth[d])
///     memory(S, d) = modelStatesMB + activationMBPerToken * sum(S) / d
///
/// A micro-batch takes the longest of its groups; a step is the sum of its micro-batches.
/// Times are in milliseconds, memory in MB, bandwidth in GB/s (= MB/ms), lengths in tokens.
///
///     let model = try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216)
///     model.groupTime(lengths: [8_192, 1_024], degree: 2)
///
/// The document form (`CostModel+JSON.swift`) is the contract shared with the Python runtime.
public struct CostModel: Hashable, Sendable {
    /// The version of the JSON document this type reads and writes.
    public static let schemaVersion = 1

    public var name: String
    public var worldSize: Int
    public var gpusPerNode: Int
    public var memoryBudgetMB: Double
    public var modelStatesMB: Double
    public var activationMBPerToken: Double
    public var alpha1: Double
    public var alpha2: Double
    public var beta1: Double
    public var a2aMBPerToken: Double
    /// Effective per-GPU all-to-all bandwidth (GB/s) for each degree above 1.
    public var a2aBandwidthGBps: [Int: Double]
    public var maxDegree: Int

    public init(
        name: String, worldSize: Int, gpusPerNode: Int, memoryBudgetMB: Double,
        modelStatesMB: Double, activationMBPerToken: Double, alpha1: Double, alpha2: Double,
        beta1: Double, a2aMBPerToken: Double, a2aBandwidthGBps: [Int: Double], maxDegree: Int
    ) {
        self.name = name
        self.worldSize = worldSize
        self.gpusPerNode = gpusPerNode
        self.memoryBudgetMB = memoryBudgetMB
        self.modelStatesMB = modelStatesMB
        self.activationMBPerToken = activationMBPerToken
        self.alpha1 = alpha1
        self.alpha2 = alpha2
        self.beta1 = beta1
        self.a2aMBPerToken = a2aMBPerToken
        self.a2aBandwidthGBps = a2aBandwidthGBps
        self.maxDegree = maxDegree
    }
}

extension CostModel {
    /// The degrees a plan may use: powers of two up to `maxDegree` and `worldSize`, ascending.
    public var degrees: [Int] {
        var result: [Int] = []
        var d = 1
        while d <= min(maxDegree, worldSize) {
            result.append(d)
            d *= 2
        }
        return result
    }

    /// Tokens one GPU can hold beside its share of the model states.
    public var tokensPerGPU: Double {
        (memoryBudgetMB - modelStatesMB) / activationMBPerToken
    }

    /// The most tokens a group of `degree` GPUs can hold within the memory budget.
    public func tokenCapacity(degree: Int) -> Int {
        // The epsilon keeps a capacity that is an exact integer in real arithmetic from
        // rounding down one token; the clamp keeps huge budgets from overflowing the conversion.
        let tokens = (tokensPerGPU * Double(degree)).nextUp + 1e-9
        guard tokens < Double(Limits.maxTokenCapacity) else { return Limits.maxTokenCapacity }
        return tokens >= 0 ? Int(tokens) : 0
    }

    /// The time one sequence of `length` tokens adds to a group of `degree`, excluding `beta1`.
    @inlinable
    public func sequenceTime(length: Int, degree: Int) -> Double {
        let s = Double(length)
        let d = Double(degree)
        let compute = (alpha1 * s * s + alpha2 * s) / d
        guard degree > 1 else { return compute }
        return compute + a2aMBPerToken * s / (d * bandwidth(degree: degree))
    }

    /// GPU-milliseconds a sequence consumes at `degree`: `degree * sequenceTime`.
    public func sequenceWork(length: Int, degree: Int) -> Double {
        Double(degree) * sequenceTime(length: length, degree: degree)
    }

    /// All-to-all bandwidth for `degree`; a degree the document omits uses the nearest smaller
    /// one it lists (validation guarantees one exists for every degree a plan may use).
    @inlinable
    public func bandwidth(degree: Int) -> Double {
        if let b = a2aBandwidthGBps[degree] { return b }
        var d = degree / 2
        while d > 1 {
            if let b = a2aBandwidthGBps[d] { return b }
            d /= 2
        }
        return .infinity
    }

    /// Time of a group of `degree` holding sequences of the given lengths (eq. 13-14).
    public func groupTime(lengths: some Sequence<Int>, degree: Int) -> Double {
        lengths.reduce(beta1) { $0 + sequenceTime(length: $1, degree: degree) }
    }

    /// Per-GPU memory of a group of `degree` holding `tokens` tokens (eq. 11).
    public func groupMemoryMB(tokens: Int, degree: Int) -> Double {
        modelStatesMB + activationMBPerToken * Double(tokens) / Double(degree)
    }

    /// Whether `tokens` tokens fit a group of `degree` within the memory budget.
    public func fits(tokens: Int, degree: Int) -> Bool {
        tokens <= tokenCapacity(degree: degree)
    }

    /// The smallest degree a plan may use that holds one sequence of `length`, if any.
    public func minimumDegree(length: Int) -> Int? {
        degrees.first { fits(tokens: length, degree: $0) }
    }

    /// The least GPU-milliseconds a sequence can cost over all degrees that hold it.
    public func minimumWork(length: Int) -> Double? {
        degrees.lazy.filter { self.fits(tokens: length, degree: $0) }
            .map { self.sequenceWork(length: length, degree: $0) }.min()
    }

    /// The least time a sequence can add to its group over all degrees that hold it.
    public func minimumTime(length: Int) -> Double? {
        degrees.lazy.filter { self.fits(tokens: length, degree: $0) }
            .map { self.sequenceTime(length: length, degree: $0) }.min()
    }
}

extension CostModel {
    /// Checks that the document describes a usable cluster; throws naming the first bad field.
    public func validate() throws(CostModelError) {
        func positive(_ value: Double, _ field: String) throws(CostModelError) {
            guard value.isFinite, value > 0 else { throw .invalidField(field, "must be a positive number, got \(value)") }
        }
        func nonNegative(_ value: Double, _ field: String) throws(CostModelError) {
            guard value.isFinite, value >= 0 else { throw .invalidField(field, "must be zero or positive, got \(value)") }
        }
        guard name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }), name.count <= 200 else {
            throw .invalidField("name", "must be at most 200 characters without control characters, got \(name.quotedForMessage())")
        }
        guard (1 ... Limits.maxWorldSize).contains(worldSize) else {
            throw .invalidField("world_size", "must be between 1 and \(Limits.maxWorldSize), got \(worldSize)")
        }
        guard (1 ... worldSize).contains(gpusPerNode) else {
            throw .invalidField("gpus_per_node", "must be between 1 and world_size (\(worldSize)), got \(gpusPerNode)")
        }
        guard (1 ... Limits.maxWorldSize).contains(maxDegree), maxDegree & (maxDegree - 1) == 0 else {
            throw .invalidField("max_degree", "must be a power of two between 1 and \(Limits.maxWorldSize), got \(maxDegree)")
        }
        try positive(memoryBudgetMB, "memory_budget_mb")
        try nonNegative(modelStatesMB, "model_states_mb")
        try positive(activationMBPerToken, "activation_mb_per_token")
        try nonNegative(alpha1, "alpha1_ms")
        try nonNegative(alpha2, "alpha2_ms")
        try nonNegative(beta1, "beta1_ms")
        try nonNegative(a2aMBPerToken, "a2a_mb_per_token")
        guard modelStatesMB < memoryBudgetMB else {
            throw .invalidField("model_states_mb", "model states (\(modelStatesMB) MB) leave no room in the \(memoryBudgetMB) MB budget")
        }
        guard alpha1 > 0 || alpha2 > 0 || beta1 > 0 else {
            throw .invalidField("alpha1_ms", "alpha1_ms, alpha2_ms and beta1_ms are all zero: every plan would take no time")
        }
        for (degree, gbps) in a2aBandwidthGBps.sorted(by: { $0.key < $1.key }) {
            guard degree >= 2, degree & (degree - 1) == 0 else {
                throw .invalidField("a2a_bandwidth_gbps", "key \(degree) is not a power of two of at least 2")
            }
            try positive(gbps, "a2a_bandwidth_gbps[\(degree)]")
        }
        if degrees.count > 1, a2aBandwidthGBps[2] == nil {
            throw .invalidField("a2a_bandwidth_gbps", "needs at least degree 2 when max_degree and world_size allow degrees above 1")
        }
    }
}
