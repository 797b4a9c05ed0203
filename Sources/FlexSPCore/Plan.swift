/// A plan for one global batch: which micro-batches run one after another, which
/// sequence-parallel groups each one forms, and which sequences each group trains.
/// Its JSON form is the contract with the runtime (DESIGN.md, "Plan").
///
/// Build one with `Plan(strategy:costModel:sequences:microBatches:lowerBoundMS:solver:)`, which
/// places groups on ranks and fills in every estimate; check one with `Simulator.violations(in:)`.
public struct Plan: Hashable, Sendable {
    public static let schemaVersion = 1

    /// One sequence of the batch.
    public struct Sequence: Hashable, Sendable, Codable {
        public var id: Int
        public var length: Int
        public init(id: Int, length: Int) {
            self.id = id
            self.length = length
        }
    }

    /// A sequence-parallel group: `degree` consecutive ranks from `firstRank`.
    public struct Group: Hashable, Sendable, Codable {
        enum CodingKeys: String, CodingKey {
            case degree
            case firstRank = "first_rank"
            case sequenceIDs = "sequence_ids"
            case tokens
            case estMS = "est_ms"
            case memoryMB = "memory_mb"
        }

        public var degree: Int
        public var firstRank: Int
        public var sequenceIDs: [Int]
        public var tokens: Int
        public var estMS: Double
        public var memoryMB: Double

        public init(degree: Int, firstRank: Int, sequenceIDs: [Int], tokens: Int, estMS: Double, memoryMB: Double) {
            self.degree = degree
            self.firstRank = firstRank
            self.sequenceIDs = sequenceIDs
            self.tokens = tokens
            self.estMS = estMS
            self.memoryMB = memoryMB
        }

        /// The ranks the group occupies.
        public var ranks: Range<Int> { firstRank ..< firstRank + degree }
    }

    /// Groups that run at the same time; the micro-batch lasts as long as its slowest group.
    public struct MicroBatch: Hashable, Sendable, Codable {
        enum CodingKeys: String, CodingKey {
            case estMS = "est_ms"
            case groups
        }

        public var estMS: Double
        public var groups: [Group]

        public init(estMS: Double, groups: [Group]) {
            self.estMS = estMS
            self.groups = groups
        }
    }

    /// Which solver made the plan and how long it took.
    public struct Solver: Hashable, Sendable, Codable {
        enum CodingKeys: String, CodingKey {
            case name
            case wallMS = "wall_ms"
        }

        public var name: String
        public var wallMS: Double
        public init(name: String, wallMS: Double) {
            self.name = name
            self.wallMS = wallMS
        }
    }

    public var strategy: String
    public var worldSize: Int
    public var costModel: CostModel
    public var sequences: [Sequence]
    public var microBatches: [MicroBatch]
    public var estStepMS: Double
    /// A proven lower bound on the step time of any plan for these sequences.
    public var lowerBoundMS: Double
    public var solver: Solver

    public init(
        strategy: String, worldSize: Int, costModel: CostModel, sequences: [Sequence],
        microBatches: [MicroBatch], estStepMS: Double, lowerBoundMS: Double, solver: Solver
    ) {
        self.strategy = strategy
        self.worldSize = worldSize
        self.costModel = costModel
        self.sequences = sequences
        self.microBatches = microBatches
        self.estStepMS = estStepMS
        self.lowerBoundMS = lowerBoundMS
        self.solver = solver
    }

    /// How far the plan may be from optimal: (estimate - lower bound) / lower bound.
    public var gap: Double {
        lowerBoundMS > 0 ? max(0, estStepMS - lowerBoundMS) / lowerBoundMS : 0
    }

    /// The degrees of each micro-batch's groups, largest first, e.g. `<8,4,1,1>`.
    public var shape: [[Int]] {
        microBatches.map { $0.groups.map(\.degree).sorted(by: >) }
    }
}

extension Plan {
    /// Assembles a plan from micro-batches given as lists of (degree, sequence ids): places each
    /// micro-batch's groups on aligned ranks (largest first, so every group starts at a multiple
    /// of its degree) and computes every estimate with the cost model.
    ///
    /// - Precondition: each micro-batch's degrees are powers of two summing to at most the
    ///   world size; every id is in `sequences`.
    public init(
        strategy: String, costModel: CostModel, sequences: [Sequence],
        assignment: [[(degree: Int, sequenceIDs: [Int])]], lowerBoundMS: Double, solver: Solver
    ) {
        var lengthOf: [Int: Int] = [:]
        for s in sequences { lengthOf[s.id] = s.length }
        let microBatches = assignment.map { groups in
            var nextRank = 0
            let placed = groups.sorted { $0.degree > $1.degree }.map { group in
                let lengths = group.sequenceIDs.map { lengthOf[$0]! }
                let tokens = lengths.reduce(0, +)
                defer { nextRank += group.degree }
                return Group(
                    degree: group.degree, firstRank: nextRank, sequenceIDs: group.sequenceIDs, tokens: tokens,
                    estMS: costModel.groupTime(lengths: lengths, degree: group.degree),
                    memoryMB: costModel.groupMemoryMB(tokens: tokens, degree: group.degree))
            }
            return MicroBatch(estMS: placed.map(\.estMS).max() ?? 0, groups: placed)
        }
        self.init(
            strategy: strategy, worldSize: costModel.worldSize, costModel: costModel, sequences: sequences,
            microBatches: microBatches, estStepMS: microBatches.reduce(0) { $0 + $1.estMS },
            lowerBoundMS: lowerBoundMS, solver: solver)
    }
}
