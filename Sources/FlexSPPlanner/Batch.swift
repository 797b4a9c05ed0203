import FlexSPCore

/// The input of every strategy: one global batch of sequences and the cost model to plan with.
///
/// Sequences are kept sorted longest first, which is the order every solver here works in.
public struct Batch: Sendable {
    public let costModel: CostModel
    /// Ids and lengths, longest first (ties by id, so plans are deterministic).
    public let ids: [Int]
    public let lengths: [Int]

    /// - Throws: `PlanningError.sequenceTooLong` naming the first sequence no group can hold,
    ///   `.nonPositiveLength`, `.lengthTooLarge`, `.tooManySequences` (over
    ///   `Limits.maxSequences`) or `.emptyBatch`.
    public init(sequences: [Plan.Sequence], costModel: CostModel) throws(PlanningError) {
        guard !sequences.isEmpty else { throw .emptyBatch }
        guard sequences.count <= Limits.maxSequences else { throw .tooManySequences(sequences.count) }
        let largest = costModel.degrees.last ?? 1
        let capacity = costModel.tokenCapacity(degree: largest)
        if let empty = sequences.first(where: { $0.length <= 0 }) {
            throw .nonPositiveLength(id: empty.id, length: empty.length)
        }
        if let huge = sequences.first(where: { $0.length > Limits.maxSequenceLength }) {
            throw .lengthTooLarge(id: huge.id, length: huge.length)
        }
        if let tooLong = sequences.first(where: { $0.length > capacity }) {
            throw .sequenceTooLong(id: tooLong.id, length: tooLong.length, capacity: capacity, degree: largest, worldSize: costModel.worldSize)
        }
        // A conservative bound on any sum of times a solver forms: every sequence at its
        // slowest degree, every group's overhead, once per sequence.
        let longest = sequences.map(\.length).max() ?? 0
        let slowest = costModel.degrees.map { costModel.sequenceTime(length: longest, degree: $0) }.max() ?? 0
        guard (Double(sequences.count) * (costModel.beta1 + slowest) * Double(sequences.count)).isFinite else {
            throw .estimateOverflow
        }
        let sorted = sequences.sorted { ($0.length, -$0.id) > ($1.length, -$1.id) }
        self.costModel = costModel
        ids = sorted.map(\.id)
        lengths = sorted.map(\.length)
    }

    /// A batch of lengths with ids 0, 1, 2, ... in the given order.
    public init(lengths: [Int], costModel: CostModel) throws(PlanningError) {
        try self.init(sequences: lengths.enumerated().map { Plan.Sequence(id: $0.offset, length: $0.element) },
                      costModel: costModel)
    }

    public var count: Int { lengths.count }
    public var totalTokens: Int { lengths.reduce(0, +) }

    /// The sequences in plan form, in id order.
    public var sequences: [Plan.Sequence] {
        zip(ids, lengths).map { Plan.Sequence(id: $0, length: $1) }.sorted { $0.id < $1.id }
    }
}
