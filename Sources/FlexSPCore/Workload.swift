/// A training dataset seen as its sequence lengths, cut into global batches the way the
/// reference system does it (data/lengths/README.md).
///
///     let lengths = try LengthFile.parse(text, source: "wikipedia.txt")
///     let workload = try Workload(lengths: lengths, source: "wikipedia.txt", batchSize: 512,
///                                 rule: .reference(maxContext: 393_216, worldSize: 64))
///     workload.batch(3)  // lengths of the 4th global batch
public struct Workload: Sendable {
    /// How raw lengths become planned lengths.
    public struct Rule: Hashable, Sendable {
        /// Each length is padded up to a multiple of this (1: unchanged).
        public var padMultiple: Int
        /// Raw lengths above this are dropped (and counted).
        public var maxLength: Int

        public init(padMultiple: Int, maxLength: Int) {
            self.padMultiple = padMultiple
            self.maxLength = maxLength
        }

        /// The reference's rule: pad to a multiple of 2 x world size (so every Ulysses degree
        /// divides it), drop lengths above max context - 2 x world size.
        public static func reference(maxContext: Int, worldSize: Int) -> Rule {
            // Both are checked elsewhere (Limits), so neither product overflows.
            Rule(padMultiple: 2 * worldSize, maxLength: maxContext - 2 * worldSize)
        }
    }

    public var source: String
    public var rule: Rule
    public var batchSize: Int
    /// Planned lengths of every kept sequence, in file order.
    public var lengths: [Int]
    /// How many sequences the rule dropped for being too long.
    public var dropped: Int

    public init(lengths raw: [Int], source: String, batchSize: Int, rule: Rule) throws(WorkloadError) {
        guard batchSize > 0 else { throw .invalidBatchSize(batchSize) }
        self.source = source
        self.rule = rule
        self.batchSize = batchSize
        let kept = raw.filter { $0 <= rule.maxLength }
        dropped = raw.count - kept.count
        guard !kept.isEmpty else { throw .nothingLeft(source: source, dropped: dropped, maxLength: rule.maxLength) }
        let m = max(1, rule.padMultiple)
        lengths = kept.map { ($0 + m - 1) / m * m }
    }

    /// Number of full global batches.
    public var batchCount: Int { lengths.count / batchSize }

    /// Lengths of global batch `index`: the `index`-th run of `batchSize` kept lengths.
    public func batch(_ index: Int) -> [Int] {
        Array(lengths[index * batchSize ..< (index + 1) * batchSize])
    }

    /// Checks that `count` batches starting at `first` exist.
    public func requireBatches(_ count: Int, from first: Int = 0) throws(WorkloadError) {
        let (end, overflow) = first.addingReportingOverflow(count)
        guard first >= 0, count >= 0, !overflow, end <= batchCount else {
            throw .notEnoughBatches(source: source, requested: overflow ? .max : end, available: batchCount, batchSize: batchSize, dropped: dropped)
        }
    }
}
