/// The open groups of one micro-batch, per degree, kept sorted by time, so that "the group of
/// degree `d` with the least time to spare that still has room" is a binary search and a short
/// walk rather than a scan of every group. Groups that cannot take even the shortest sequence
/// still to place are dropped for good: at scale, most groups end memory-full, and walking past
/// them is what made the scan `K x G`.
///
/// - Complexity: `best` is O(D (log G + w)) for D degrees and w the open groups within time
///   that lack room; `update` is O(G) (an array insertion).
struct OpenGroupIndex {
    /// Per degree (in `degrees` order): open groups as `(time, group)`, ascending.
    private var lists: [[(time: Double, group: Int)]]
    /// The degree each list is for.
    let degrees: [Int]
    /// Token capacity per degree.
    let capacities: [Int]
    /// The shortest sequence still to place: a group with less room is closed.
    let shortest: Int

    init(degrees: [Int], capacities: [Int], shortest: Int) {
        self.degrees = degrees
        self.capacities = capacities
        self.shortest = shortest
        lists = Array(repeating: [], count: degrees.count)
    }

    /// Adds or re-files group `group` of `degrees[k]` with its time and tokens.
    mutating func file(group: Int, degreeIndex k: Int, time: Double, tokens: Int) {
        guard tokens + shortest <= capacities[k] else { return }
        let at = position(of: (time, group), in: lists[k])
        lists[k].insert((time, group), at: at)
    }

    /// Removes group `group` of `degrees[k]` filed at `time` (no-op if it was closed).
    mutating func remove(group: Int, degreeIndex k: Int, time: Double) {
        let at = position(of: (time, group), in: lists[k])
        if at < lists[k].count, lists[k][at].group == group { lists[k].remove(at: at) }
    }

    /// Among groups of `degrees[k]` whose `accepts(group)` holds and that have room for
    /// `length` more tokens beside their `tokens(group)`: the ones with the largest time at most
    /// `limit` (a little above it too: `accepts` decides), highest time first, ties by lowest
    /// group index. Calls `visit` until it returns true.
    func walk(degreeIndex k: Int, upTo limit: Double, length: Int, tokens: (Int) -> Int, visit: (Int) -> Bool) {
        let list = lists[k]
        // Past every entry at most `limit` (by a relative hair, so rounding cannot hide one).
        var lo = 0, hi = list.count
        let edge = limit + 1e-9 * Swift.max(1, abs(limit))
        while lo < hi {
            let mid = (lo + hi) / 2
            if list[mid].time <= edge { lo = mid + 1 } else { hi = mid }
        }
        var p = lo - 1
        while p >= 0 {
            let g = list[p].group
            if tokens(g) + length <= capacities[k], visit(g) { return }
            p -= 1
        }
    }

    private func position(of entry: (time: Double, group: Int), in list: [(time: Double, group: Int)]) -> Int {
        var lo = 0, hi = list.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if list[mid].time < entry.time || (list[mid].time == entry.time && list[mid].group < entry.group) { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
