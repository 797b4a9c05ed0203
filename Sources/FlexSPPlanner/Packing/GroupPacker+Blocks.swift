import FlexSPCore
import Foundation

/// Packing on a large cluster, block by block: the GPUs are cut into equal blocks of whole
/// nodes, the micro-batch's sequences are dealt to the blocks, and each block is packed on its
/// own by a packer that sees only its GPUs. Every group then lies inside one block.
///
/// Why: a packing's work grows with the groups it must look through (`G`) for every sequence
/// it places (`K`), so one packing of a micro-batch on 16,384 GPUs is a `K x G` affair; cut
/// into blocks of `B` GPUs it is `K x G_B`, and blocks that receive the same lengths share one
/// packing. The cost model has no notion of *where* a group lies (only its degree and whether
/// that degree spans nodes), so blocks are interchangeable, and a block of many nodes loses
/// little: a group never needs more than the largest degree, far below a block's size.
/// DCP (SOSP'25) places its blocks machine-first for the same reason.
///
/// Two deals are tried and the faster packing kept:
/// - *striped*: longest first, in serpentine order over the blocks (1..P, P..1, ...), so every
///   block gets the same mix of lengths and tokens (and often exactly the same lengths);
/// - *balanced*: longest first, each to the block with the least work so far (a sequence's
///   least GPU-time) that has room for its tokens: what wins when a few long sequences
///   dominate the time.
///
/// - Complexity: two deals of O(K x P), plus the packing of each distinct block (side by side).
extension GroupPacker {
    /// GPUs per block: at least 512 (64 nodes of 8) and 8 groups of the largest degree.
    static func blockSize(model: CostModel, degrees: [Int]) -> Int? {
        let largest = degrees.last ?? 1
        var size = 512
        while size < 8 * largest { size *= 2 }
        let n = model.worldSize
        guard n >= 2 * size, n % size == 0, size % max(1, model.gpusPerNode) == 0 else { return nil }
        return size
    }

    /// The packer of one block (nil when the cluster is packed whole).
    func blockPacker() -> GroupPacker? {
        guard let size = Self.blockSize(model: model, degrees: degrees) else { return nil }
        var block = model
        block.worldSize = size
        return GroupPacker(model: block, degrees: degrees)
    }

    /// Packs `lengths` (longest first) block by block with `inner`, the packer of one block;
    /// nil when neither deal fits. Each deal's distinct blocks that no earlier packing memoised
    /// are packed side by side (`Parallel.map`), each once.
    func packInBlocks(lengths: [Int], thorough: Bool, seed: Packing?, inner: GroupPacker, memo: BlockMemo) async -> Packing? {
        let blocks = model.worldSize / inner.model.worldSize
        let deals = [striped(count: lengths.count, blocks: blocks), balanced(lengths: lengths, inner: inner, blocks: blocks)]
            .compactMap { $0 }.map { $0.filter { !$0.isEmpty } }
        var best: Packing?
        for deal in deals {
            guard let packings = await packBlocks(of: deal, lengths: lengths, thorough: thorough, inner: inner, memo: memo) else { continue }
            var groups: [Group] = []
            var makespan = 0.0
            for (members, packing) in zip(deal, packings) {
                makespan = max(makespan, packing.makespan)
                groups += packing.groups.map { Group(degree: $0.degree, members: $0.members.map { members[$0] }) }
            }
            if makespan < best?.makespan ?? .infinity { best = Packing(groups: groups, makespan: makespan) }
        }
        // Blocks cannot trade sequences; the local search across the whole cluster can
        // (measured: it recovers a memory-bound micro-batch's combinations at 4,096 GPUs).
        if let packing = best { best = refine(packing, lengths: lengths, times: TimeTable(lengths: lengths, packer: self)) }
        // Another strategy's packing competes as it is (it may span blocks).
        if let seed {
            let makespan = seed.groups.map { group in
                group.members.reduce(model.beta1) { $0 + model.sequenceTime(length: lengths[$1], degree: group.degree) }
            }.max() ?? 0
            if makespan < best?.makespan ?? .infinity { best = Packing(groups: seed.groups, makespan: makespan) }
        }
        return best
    }

    /// The packing of each block of a deal: from the memo, or packed side by side (each distinct
    /// block once); nil when a block does not fit, and then the blocks not yet started are
    /// skipped (a memory-bound micro-batch often fails the striped deal at its first block).
    private func packBlocks(of deal: [[Int]], lengths: [Int], thorough: Bool, inner: GroupPacker, memo: BlockMemo) async -> [Packing]? {
        let keys = deal.map { BlockMemo.Key(lengths: $0.map { lengths[$0] }, thorough: thorough) }
        var known = keys.map { memo[$0] }
        // A block already known not to fit.
        if known.contains(where: { if case .some(.none) = $0 { true } else { false } }) { return nil }
        var unknown: [BlockMemo.Key] = []
        var slot: [BlockMemo.Key: Int] = [:]
        var waiting: [(block: Int, slot: Int)] = []
        for (b, key) in keys.enumerated() where known[b] == nil {
            let s = slot[key] ?? unknown.count
            if s == unknown.count {
                slot[key] = s
                unknown.append(key)
            }
            waiting.append((b, s))
        }
        let toPack = unknown
        let failed = Flag()
        let packed = await Parallel.map(toPack.count) { u -> Packing?? in
            guard !failed.isSet else { return nil }
            let packing = inner.packWhole(lengths: toPack[u].lengths, thorough: thorough, seed: nil)
            memo[toPack[u]] = packing
            if packing == nil { failed.set() }
            return .some(packing)
        }
        guard !failed.isSet else { return nil }
        for w in waiting { known[w.block] = packed[w.slot] }
        return known.map { $0!! }
    }

    /// Serpentine deal of `count` sequences (longest first) over `blocks` blocks.
    private func striped(count: Int, blocks: Int) -> [[Int]]? {
        var deal = [[Int]](repeating: [], count: blocks)
        for i in 0 ..< count {
            let round = i / blocks, slot = i % blocks
            deal[round % 2 == 0 ? slot : blocks - 1 - slot].append(i)
        }
        return deal
    }

    /// Longest first, each sequence to the block with the least work that has room for it;
    /// nil when a sequence finds no room.
    private func balanced(lengths: [Int], inner: GroupPacker, blocks: Int) -> [[Int]]? {
        let room = zip(inner.degrees, inner.capacities).map { (inner.model.worldSize / $0) * $1 }.max() ?? 0
        var deal = [[Int]](repeating: [], count: blocks)
        var work = [Double](repeating: 0, count: blocks)
        var tokens = [Int](repeating: 0, count: blocks)
        let least = leastCosts(lengths: lengths).work
        for (i, length) in lengths.enumerated() {
            var chosen: Int?
            for b in 0 ..< blocks where tokens[b] + length <= room && work[b] < (chosen.map { work[$0] } ?? .infinity) {
                chosen = b
            }
            guard let b = chosen else { return nil }
            deal[b].append(i)
            work[b] += least[i]
            tokens[b] += length
        }
        return deal
    }
}

/// A flag parallel pieces raise once (a block that does not fit).
final class Flag: @unchecked Sendable {
    private var raised = false
    private let lock = NSLock()

    var isSet: Bool { lock.withLock { raised } }
    func set() { lock.withLock { raised = true } }
}

/// Block packings by lengths, shared by parallel packings: blocks dealt the same lengths, in
/// one micro-batch or across candidate splits, are packed once.
final class BlockMemo: @unchecked Sendable {
    /// A block's lengths and packing mode; hashed once (keys of thousands of lengths are
    /// looked up several times).
    struct Key: Hashable, Sendable {
        let lengths: [Int]
        let thorough: Bool
        private let hash: Int

        init(lengths: [Int], thorough: Bool) {
            self.lengths = lengths
            self.thorough = thorough
            var hasher = Hasher()
            hasher.combine(lengths)
            hasher.combine(thorough)
            hash = hasher.finalize()
        }

        static func == (a: Key, b: Key) -> Bool { a.hash == b.hash && a.thorough == b.thorough && a.lengths == b.lengths }

        func hash(into hasher: inout Hasher) { hasher.combine(hash) }
    }

    private var packings: [Key: GroupPacker.Packing?] = [:]
    private let lock = NSLock()

    subscript(key: Key) -> GroupPacker.Packing?? {
        get { lock.withLock { packings[key] } }
        set { lock.withLock { packings[key] = newValue ?? nil } }
    }
}
