/// A plan for one global batch: which micro-batches run one after another, which
/// sequence-parallel groups each one forms, and which sequences each group trains.
/// Its JSON form is the contract with the runtime (docs/DESIGN.md, "Plan").
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
    /// Assembles a plan from a schedule whose members are sequence ids: places each
    /// micro-batch's groups on aligned ranks (largest first, so every group starts at a multiple
    /// of its degree) and computes every estimate with the cost model.
    ///
    /// - Precondition: each micro-batch's degrees are powers of two summing to at most the
    ///   world size; every id is in `sequences` (an unknown id counts no tokens, and
    ///   `Simulator.violations(in:)` reports it).
    public init(
        strategy: String, costModel: CostModel, sequences: [Sequence], schedule: Schedule, lowerBoundMS: Double,
        solver: Solver
    ) {
        var lengthOf: [Int: Int] = [:]
        for s in sequences { lengthOf[s.id] = s.length }
        let length = { (id: Int) in lengthOf[id] }
        let microBatches = schedule.microBatches.map { groups in
            var nextRank = 0
            let placed = groups.sorted { $0.degree > $1.degree }.map { group in
                let lengths = group.members.compactMap(length)
                let tokens = lengths.reduce(0, +)
                defer { nextRank += group.degree }
                return Group(
                    degree: group.degree, firstRank: nextRank, sequenceIDs: group.members, tokens: tokens,
                    estMS: costModel.groupTime(lengths: lengths, degree: group.degree),
                    memoryMB: costModel.groupMemoryMB(tokens: tokens, degree: group.degree))
            }
            return MicroBatch(estMS: Schedule.makespan(of: groups, model: costModel, length: length), groups: placed)
        }
        self.init(
            strategy: strategy, worldSize: costModel.worldSize, costModel: costModel, sequences: sequences,
            microBatches: microBatches, estStepMS: schedule.stepTime(model: costModel, length: length),
            lowerBoundMS: lowerBoundMS, solver: solver)
    }

    /// The plan's groups as a schedule whose members are sequence ids (ranks left out).
    public var schedule: Schedule {
        Schedule(microBatches.map { $0.groups.map { Schedule.Group(degree: $0.degree, members: $0.sequenceIDs) } })
    }
}
