import FlexSPCore

/// The local search that polishes every packing.
extension GroupPacker {
    /// One move of the local search: a member of the slowest group goes to group `target`, and
    /// `swapWith` (a position in the target) comes back, if set.
    private struct Move {
        /// The larger of the two groups' times after the move.
        var worse: Double
        /// Position of the moving sequence in the slowest group's members.
        var position: Int
        var target: Int
        var swapWith: Int?
    }

    /// Local search on the slowest group: move one of its sequences to another group (the best
    /// such move), or else swap one with a faster-running one of another group's, whenever that
    /// lowers the larger of the two groups' times below the current makespan. Stops when the
    /// slowest group cannot be improved.
    ///
    /// - Complexity: O(iterations x members of the slowest group x K).
    func refine(_ packing: Packing, lengths: [Int], times: TimeTable) -> Packing {
        let index = Dictionary(uniqueKeysWithValues: degrees.enumerated().map { ($1, $0) })
        var groups = packing.groups.map { group in
            let k = index[group.degree]!
            return OpenGroup(degreeIndex: k,
                             time: group.members.reduce(model.beta1) { $0 + times[$1, k] },
                             tokens: group.members.reduce(0) { $0 + lengths[$1] }, members: group.members)
        }
        let epsilon = 1e-9 * (groups.map(\.time).max() ?? 1)
        for _ in 0 ..< 4 * lengths.count {
            guard let slowest = groups.indices.max(by: { groups[$0].time < groups[$1].time }) else { break }
            let from = groups[slowest]
            let limit = from.time - epsilon
            let ks = from.degreeIndex
            // Moves first (O(members x G)); swaps (O(members x K)) only when no move helps.
            var best: Move?
            func consider(_ move: Move) {
                if move.worse < limit && move.worse < best?.worse ?? .infinity { best = move }
            }
            for swaps in [false, true] where best == nil {
                for (position, a) in from.members.enumerated() {
                    let ta = times[a, ks]
                    for h in groups.indices where h != slowest {
                        let to = groups[h]
                        let kh = to.degreeIndex
                        let aThere = times[a, kh]
                        guard aThere.isFinite else { continue }
                        guard swaps else {
                            if to.tokens + lengths[a] <= capacities[kh] {
                                consider(Move(worse: max(from.time - ta, to.time + aThere), position: position, target: h, swapWith: nil))
                            }
                            continue
                        }
                        // Only a shorter-running `b` can make the slowest group faster.
                        for (other, b) in to.members.enumerated() {
                            let bHere = times[b, ks]
                            guard bHere < ta,
                                  to.tokens - lengths[b] + lengths[a] <= capacities[kh],
                                  from.tokens - lengths[a] + lengths[b] <= capacities[ks] else { continue }
                            consider(Move(worse: max(from.time - ta + bHere, to.time - times[b, kh] + aThere),
                                          position: position, target: h, swapWith: other))
                        }
                    }
                }
            }
            guard let move = best else { break }
            let kh = groups[move.target].degreeIndex
            let a = groups[slowest].members.remove(at: move.position)
            groups[slowest].time -= times[a, ks]
            groups[slowest].tokens -= lengths[a]
            if let other = move.swapWith {
                let b = groups[move.target].members.remove(at: other)
                groups[move.target].time -= times[b, kh]
                groups[move.target].tokens -= lengths[b]
                groups[slowest].members.append(b)
                groups[slowest].time += times[b, ks]
                groups[slowest].tokens += lengths[b]
            }
            groups[move.target].members.append(a)
            groups[move.target].time += times[a, kh]
            groups[move.target].tokens += lengths[a]
        }
        return finished(groups)
    }
}
