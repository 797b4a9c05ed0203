import FlexSPCore

/// Megatron-Core's dynamic context parallelism (`--dynamic-context-parallel`): the
/// packing-aware scheduler `DefaultDynamicCPScheduler`, re-implemented from its description in
/// `megatron/core/datasets/data_schedule.py` and `data_schedule_utils.py`
/// (`next_hdp_group_packing_aware`), and scored by our cost model like every other strategy.
///
/// The batch, longest first, is cut into micro-batches one at a time; what does not fit one is
/// carried, in order, to the next. Within a micro-batch:
///
/// - The longest remaining sequence opens a group of the smallest power-of-two size that holds
///   it, on ranks `0 ..< size`. Its length `T` sets the micro-batch's per-rank workload cap
///   `1.05 x T x tokensPerRank`.
/// - Every other sequence `s` tries each size `c` at least its minimum: joining each existing
///   group of size `c` that keeps `sum(s) / c <= tokensPerRank`, or opening a group on the `c`
///   least-loaded free ranks. Each placement is scored by the largest projected per-rank
///   workload `s^2 / c` over all ranks; the least score within the cap wins (on ties the first
///   found: smaller sizes first, existing groups in opening order before a new group). A
///   sequence with no placement is left over for the next micro-batch.
/// - Idle ranks are then filled: the first group of the smallest size doubles (the groups after
///   it shift along) until every rank is busy. Megatron falls back to one group of all ranks
///   when no size can double; here that happens only when the cost model's largest degree is
///   below the world size, and the idle ranks stay idle instead (a larger group has no cost).
///
/// The budget per rank is the cost model's token capacity of one GPU.
///
/// - Complexity: O(M x K x D x G_open) for M micro-batches, K sequences, D degrees and G_open
/// groups that can still take the shortest sequence left (most groups end full at scale).
public struct MegatronDCPSolver: Sendable {
    /// Megatron's `_DYNAMIC_CP_WORKLOAD_CAP_DELTA`: slack of the per-rank workload cap.
    public static let capSlack = 0.05

    public init() {}

    /// Plans the batch; throws `.infeasible` when a sequence needs more ranks than any allowed
    /// group has.
    public func solve(_ batch: Batch) throws(PlanningError) -> Solution {
        Solution(batch: batch, schedule: try schedule(batch))
    }

    /// The plan as groups of batch indices, per micro-batch.
    func schedule(_ batch: Batch) throws(PlanningError) -> Schedule {
        let model = batch.costModel
        let perRank = model.tokenCapacity(degree: 1)
        guard perRank >= 1 else {
            throw .infeasible(strategy: "megatron-dcp", reason: "one GPU holds no token beside the model states")
        }
        var remaining = Array(batch.lengths.indices)  // longest first, ties in id order
        var microBatches: [[GroupPacker.Group]] = []
        while !remaining.isEmpty {
            let (groups, leftovers) = try Self.nextMicroBatch(
                remaining, lengths: batch.lengths, sizes: model.degrees, worldSize: model.worldSize, perRank: perRank)
            microBatches.append(groups.map { GroupPacker.Group(degree: $0.size, members: $0.members) })
            remaining = leftovers
        }
        return Schedule(microBatches)
    }

    /// One group of a micro-batch being formed: consecutive ranks, in opening order.
    struct Group {
        var size: Int
        /// Indices into the batch.
        var members: [Int]
        /// Per-rank tokens, `sum(s / size)`, as Megatron accumulates it.
        var tokensPerRank: Double
        /// Per-rank workload, `sum(s^2 / size)`.
        var workload: Double
    }

    /// Forms one micro-batch from `order` (batch indices, longest first); returns its groups
    /// and the sequences left over, in order.
    static func nextMicroBatch(
        _ order: [Int], lengths: [Int], sizes: [Int], worldSize: Int, perRank: Int
    ) throws(PlanningError) -> (groups: [Group], leftovers: [Int]) {
        let budget = Double(perRank)
        func minimumSize(_ length: Int) throws(PlanningError) -> Int {
            let required = max(1, length / perRank + (length % perRank == 0 ? 0 : 1))
            guard let size = sizes.first(where: { $0 >= required }) else {
                throw .infeasible(strategy: "megatron-dcp",
                                  reason: "a sequence of \(length) tokens needs \(required) ranks of \(perRank) tokens; the largest group has \(sizes.last ?? 0)")
            }
            return size
        }
        func workload(_ length: Int, _ size: Int) -> Double { Double(length) * Double(length) / Double(size) }

        let tall = lengths[order[0]]
        let cap = Double(tall) * budget * (1 + capSlack)
        let firstSize = try minimumSize(tall)
        var groups = [Group(size: firstSize, members: [order[0]],
                            tokensPerRank: Double(tall) / Double(firstSize), workload: workload(tall, firstSize))]
        var usedRanks = firstSize
        var leftovers: [Int] = []
        // The two largest workloads, kept as groups grow (workloads only grow): the first group
        // with the largest, and the largest among the rest (equal to it on a tie).
        var top = groups[0].workload, second = 0.0, topGroup = 0
        func grew(_ g: Int) {
            let w = groups[g].workload
            if g == topGroup {
                top = w
            } else if w > top {
                second = top; top = w; topGroup = g
            } else if w == top {
                second = top
                if g < topGroup { topGroup = g }
            } else {
                second = max(second, w)
            }
        }
        // Per size, the groups that can still take the shortest sequence left, in index order
        // (a full group is never looked at again: at scale most groups end full).
        let shortest = order.map { lengths[$0] }.min() ?? 0
        var open = [[Int]](repeating: [], count: sizes.count)
        func file(_ g: Int) {
            let group = groups[g]
            guard let k = sizes.firstIndex(of: group.size),
                  group.tokensPerRank + Double(shortest) / Double(group.size) <= budget else { return }
            open[k].append(g)
        }
        file(0)

        for i in order.dropFirst() {
            let length = lengths[i]
            let smallest = try minimumSize(length)
            // (score, size, group to join or nil for a new one)
            var best: (score: Double, size: Int, group: Int?)?
            for (k, size) in sizes.enumerated() where size >= smallest {
                let cost = workload(length, size)
                for g in open[k] {
                    let group = groups[g]
                    guard group.tokensPerRank + Double(length) / Double(size) <= budget else { continue }
                    let others = g == topGroup ? second : top
                    let score = max(others, group.workload + cost)
                    if score <= cap && score < best?.score ?? .infinity { best = (score, size, g) }
                }
                if worldSize - usedRanks >= size {
                    // Free ranks carry no workload yet.
                    let score = max(top, cost)
                    if score <= cap && score < best?.score ?? .infinity { best = (score, size, nil) }
                }
            }
            guard let best else {
                leftovers.append(i)
                continue
            }
            let cost = workload(length, best.size)
            if let g = best.group {
                groups[g].members.append(i)
                groups[g].tokensPerRank += Double(length) / Double(best.size)
                groups[g].workload += cost
                grew(g)
                if groups[g].tokensPerRank + Double(shortest) / Double(best.size) > budget, let k = sizes.firstIndex(of: best.size) {
                    open[k].removeAll { $0 == g }
                }
            } else {
                groups.append(Group(size: best.size, members: [i], tokensPerRank: Double(length) / Double(best.size), workload: cost))
                usedRanks += best.size
                let g = groups.count - 1
                if cost > top { second = top; top = cost; topGroup = g } else if cost == top { second = top } else { second = max(second, cost) }
                file(g)
            }
        }

        // Fill idle ranks: double the first group of the smallest size while a larger size exists.
        while usedRanks < worldSize {
            let smallest = groups.map(\.size).min()!
            guard let next = sizes.first(where: { $0 > smallest }), usedRanks - smallest + next <= worldSize,
                  let g = groups.firstIndex(where: { $0.size == smallest }) else { break }
            groups[g].size = next
            usedRanks += next - smallest
        }
        return (groups, leftovers)
    }
}
