import FlexSPCore
import Foundation

/// Packs one micro-batch's sequences into sequence-parallel groups of allowed degrees so that
/// the slowest group finishes as early as possible, using at most `worldSize` GPUs.
///
/// Two families of packings are tried, and each is polished by a local search (`refine`):
///
/// - *Makespan search.* For each floor degree `f` it binary-searches the makespan `C`. For a
///   given `C`, sequences are taken longest first; each joins the open group where it leaves
///   the least time to spare (best fit; or the fewest free tokens, where memory binds; or the
///   most time to spare) among those with room in time and memory, or else opens a group of
///   the smallest degree of at least `f` that holds it and finishes within `C`.
/// - *Memory fill.* For each base degree `b`, every sequence goes to a group of degree `b` (or
///   of its own smallest degree, if `b` cannot hold it): the least-loaded group with room
///   (longest-processing-time first), or the one left with the fewest free tokens. This is
///   what wins when the micro-batch fills the GPUs' memory and the makespan search fragments.
///
/// A seed packing (another strategy's groups) can be given; it is refined and competes too.
/// Micro-batches of at most 8 sequences (on clusters small enough) are packed exactly instead.
/// Clusters of 1,024 GPUs and more are packed block by block (`GroupPacker+Blocks.swift`).
///
/// - Complexity: O(D x log(1/eps) x K x D x log G) for K sequences, D degrees and G groups for
///   the search, O(D x K x G) for the fills, plus the local search.
struct GroupPacker: Sendable {
    /// A group of a packing: its degree and its members (indices into the packed lengths).
    typealias Group = Schedule.Group

    struct Packing: Sendable {
        var groups: [Group]
        var makespan: Double
    }

    /// The time each sequence adds to a group of each allowed degree (excluding `beta1`);
    /// infinity where the sequence alone does not fit the degree's memory.
    struct TimeTable {
        let degreeCount: Int
        private var values: [Double]

        init(lengths: [Int], packer: GroupPacker) {
            degreeCount = packer.degrees.count
            values = [Double](repeating: .infinity, count: lengths.count * degreeCount)
            for (i, length) in lengths.enumerated() {
                for k in 0 ..< degreeCount where length <= packer.capacities[k] {
                    values[i * degreeCount + k] = packer.model.sequenceTime(length: length, degree: packer.degrees[k])
                }
            }
        }

        /// Time of `sequence` at `degrees[degreeIndex]`.
        subscript(sequence: Int, degreeIndex: Int) -> Double { values[sequence * degreeCount + degreeIndex] }
    }

    let model: CostModel
    /// Allowed degrees, ascending.
    let degrees: [Int]
    /// Token capacity of a group of each allowed degree.
    let capacities: [Int]
    /// Exact packings found so far, by lengths: candidate splits often share a small
    /// micro-batch (the longest sequences), and the exhaustive search is the dearest step.
    let exactMemo = ExactMemo()
    /// Block packings found so far, by lengths (`GroupPacker+Blocks.swift`).
    let blockMemo = BlockMemo()

    init(model: CostModel, degrees: [Int]) {
        self.model = model
        self.degrees = degrees.sorted()
        capacities = self.degrees.map { model.tokenCapacity(degree: $0) }
    }

    /// Packs lengths sorted longest first; nil when no packing fits the GPUs and memory.
    ///
    /// - Parameters:
    ///   - thorough: try every floor degree and fit; else stop at the first floor that fits
    ///     (usually floor 1: about D times faster; none when seeded) and try only the
    ///     spreading memory fill.
    ///   - seed: a valid packing of the same lengths to refine and compete with.
    func pack(lengths: [Int], thorough: Bool = true, seed: Packing? = nil) async -> Packing? {
        guard !lengths.isEmpty else { return Packing(groups: [], makespan: 0) }
        // A large cluster is packed block by block (`GroupPacker+Blocks.swift`).
        if let inner = blockPacker() {
            return await packInBlocks(lengths: lengths, thorough: thorough, seed: seed, inner: inner, memo: blockMemo)
        }
        return packWhole(lengths: lengths, thorough: thorough, seed: seed)
    }

    /// `pack` on the whole cluster: what each block's packer does.
    func packWhole(lengths: [Int], thorough: Bool, seed: Packing?) -> Packing? {
        let times = TimeTable(lengths: lengths, packer: self)
        let bound = lowerBound(lengths: lengths)
        guard bound.isFinite else { return nil }
        // A handful of sequences: the optimum itself, by exhaustive search.
        if exactIsCheap(count: lengths.count) {
            if let known = exactMemo[lengths] { return known }
            let packing = exact(lengths: lengths, times: times)
            exactMemo[lengths] = packing
            return packing
        }
        // Quick: refine only the best raw packing; thorough: refine each.
        var fills: [Packing] = []
        for base in 0 ..< degrees.count {
            for tight in thorough ? [false, true] : [false] {
                if let packing = fill(lengths: lengths, times: times, base: base, tight: tight) { fills.append(packing) }
            }
        }
        var best: Packing?
        func consider(_ packing: Packing) {
            let refined = refine(packing, lengths: lengths, times: times)
            if refined.makespan < best?.makespan ?? .infinity { best = refined }
        }
        // No packing beats the bound: stop there (one long sequence often sets it).
        var atBound: Bool { (best?.makespan ?? .infinity) <= bound * (1 + 1e-12) }
        guard thorough else {
            // Quick: the first floor that fits, the fills and the seed; refine only the best raw
            // one and the seed (a seeded quick packing is only a ranking: no search).
            var raw = fills
            if seed == nil {
                for floor in 0 ..< degrees.count {
                    if let packing = search(lengths: lengths, times: times, floor: floor, fit: .time, from: bound) {
                        raw.append(packing)
                        break
                    }
                }
            }
            if let first = raw.min(by: { $0.makespan < $1.makespan }) { consider(first) }
            if let seed { consider(seed) }
            return best
        }
        for packing in fills { consider(packing) }
        if let seed { consider(seed) }
        // Each floor is a smallest degree for new groups: floor 1 favours many small groups,
        // higher floors fewer, larger groups that pack with less fragmentation.
        for floor in 0 ..< degrees.count where !atBound {
            for fit in Fit.allCases where !atBound {
                if let packing = search(lengths: lengths, times: times, floor: floor, fit: fit, from: bound) { consider(packing) }
            }
        }
        return best
    }

    /// A group while a packing is built or refined: its degree as an index into `degrees`.
    struct OpenGroup {
        var degreeIndex: Int
        var time: Double
        var tokens: Int
        var members: [Int]
    }

    /// The packing of the groups that hold sequences.
    func finished(_ groups: [OpenGroup]) -> Packing {
        let used = groups.filter { !$0.members.isEmpty }
        return Packing(groups: used.map { Group(degree: degrees[$0.degreeIndex], members: $0.members) },
                       makespan: used.map(\.time).max() ?? 0)
    }
}
