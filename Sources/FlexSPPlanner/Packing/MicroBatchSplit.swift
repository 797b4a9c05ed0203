import FlexSPCore

/// Ways to divide a batch's sequences (sorted longest first) among `M` micro-batches. The
/// paper balances tokens (`Blaster.chunks`); a step's time is the *sum* of its micro-batches'
/// makespans, so FlexSP also tries splits that minimise an estimate of that sum.
///
/// A micro-batch's makespan is estimated from its longest sequence `L` and the rest `R`: `L`
/// runs on a group of some degree `d` while the other `N - d` GPUs share `R`'s least work;
/// when `d = N` everything shares the one group:
///
///     estimate = beta1 + min over d of { max(time(L, d), work(R) / (N - d))   if d < N
///                                      { time(L, N) + time(R, N)               if d = N
///
/// The memory-aware estimate adds that the other GPUs hold at most `room(N - d)` tokens: what
/// of `R` they cannot hold (`over`, at least `R`'s shortest sequence, as sequences move whole;
/// a share `s` of `R`'s tokens) joins `L`'s group, and `d` is out when that group cannot hold
/// it. For `d < N`:
///
///     max(time(L, d) + s x time(R, d), (1 - s) x work(R) / (N - d))
///
/// Without it a split can put a node-sized long sequence beside far more tokens than the rest
/// of the cluster holds, which the packer then spreads over slow cross-node groups (wikipedia
/// batch 1 at 64 GPUs: 5,283 ms where 5,146 ms was possible). Neither estimate is the better
/// guide on every batch (the memory-blind one's split wins wikipedia batch 4 by 1%), so the
/// solver tries the time-balanced split under both.
enum MicroBatchSplit {
    /// Per-sequence figures the splits need, for one set of allowed degrees.
    struct Figures {
        var lengths: [Int]
        /// Least GPU-time of each sequence over the allowed degrees that hold it.
        var work: [Double]
        /// Time of each sequence at each allowed degree (infinity where it does not fit).
        var times: [[Double]]
        var degrees: [Int]
        /// Tokens of each allowed degree's group, and of the `N - d` GPUs beside it.
        var groupCapacity: [Int]
        var roomBeside: [Int]
        /// The most tokens one micro-batch can hold.
        var capacity: Int
        var beta1: Double
        var worldSize: Int

        init(lengths: [Int], model: CostModel, degrees: [Int]) {
            self.lengths = lengths
            self.degrees = degrees
            let n = model.worldSize
            times = lengths.map { length in
                degrees.map { model.fits(tokens: length, degree: $0) ? model.sequenceTime(length: length, degree: $0) : .infinity }
            }
            work = times.map { row in zip(row, degrees).map { $0 * Double($1) }.min() ?? .infinity }
            groupCapacity = degrees.map { model.tokenCapacity(degree: $0) }
            roomBeside = degrees.map { $0 < n ? model.tokenCapacity(degree: n - $0) : 0 }
            // Groups of one degree d hold at most (N / d) x capacity(d) tokens in all.
            capacity = degrees.map { (n / $0) * model.tokenCapacity(degree: $0) }.max() ?? 0
            beta1 = model.beta1
            worldSize = n
        }

        /// Estimated makespan of a micro-batch whose longest sequence is `longest` and whose
        /// other sequences have `restTokens` tokens (the shortest `restShortest`), total least
        /// work `rest`, and total time `restTime(k)` at `degrees[k]`; with `memory`, the rest
        /// must fit the memory beside the longest's group.
        func estimate(longest: Int, rest: Double, restTokens: Int, restShortest: Int, restTime: (Int) -> Double,
                      memory: Bool) -> Double {
            var best = Double.infinity
            for (k, d) in degrees.enumerated() {
                let t = times[longest][k]
                guard t.isFinite else { continue }
                let value: Double
                if d == worldSize {
                    value = t + restTime(k)
                } else {
                    var over = restTokens - roomBeside[k]
                    if !memory || over <= 0 {
                        value = max(t, rest / Double(worldSize - d))
                    } else {
                        over = max(over, restShortest)
                        guard over <= groupCapacity[k] - lengths[longest] else { continue }
                        let share = Double(over) / Double(restTokens)
                        value = max(t + share * restTime(k), (1 - share) * rest / Double(worldSize - d))
                    }
                }
                best = min(best, value)
            }
            return beta1 + best
        }
    }

    /// Consecutive chunks minimising the sum of estimated makespans (memory-aware with
    /// `memory`), each within the token capacity, for every M up to `maxCount` at once
    /// (`result[M]`, `maxCount + 1` entries; nil where none fits).
    /// Above `grid` sequences, chunks start only at multiples of `K / grid`, to bound the work.
    ///
    /// - Complexity: O(maxCount x min(K, grid)^2 x D).
    static func timeBalanced(_ f: Figures, maxCount: Int, memory: Bool = false, grid: Int = 1024) -> [[Range<Int>]?] {
        let k = f.lengths.count
        let step = max(1, (k + grid - 1) / grid)
        // Candidate chunk boundaries.
        var points = Array(stride(from: 0, to: k, by: step))
        points.append(k)
        let p = points.count
        let d = f.degrees.count
        var workPrefix = [0.0], tokenPrefix = [0]
        // timePrefix[i * d + k]: time of the first i sequences at degrees[k], counting those
        // the degree cannot hold as 0 (a chunk is only estimated at degrees its first, longest,
        // sequence fits, which every other member of the chunk fits too).
        var timePrefix = [Double](repeating: 0, count: (k + 1) * d)
        for i in 0 ..< k {
            workPrefix.append(workPrefix[i] + f.work[i])
            tokenPrefix.append(tokenPrefix[i] + f.lengths[i])
            for index in 0 ..< d {
                let time = f.times[i][index]
                timePrefix[(i + 1) * d + index] = timePrefix[i * d + index] + (time.isFinite ? time : 0)
            }
        }
        // One entry per requested count, nil past the number of chunk boundaries (fewer than
        // K when the grid is coarser than the batch).
        var result = [[Range<Int>]?](repeating: nil, count: max(0, maxCount) + 1)
        let maxCount = min(maxCount, p - 1)
        guard maxCount >= 1 else { return result }
        // best[a]: least estimated sum over the first points[a] sequences.
        var best = [Double](repeating: .infinity, count: p)
        best[0] = 0
        var cut = [[Int?]](repeating: [Int?](repeating: nil, count: p), count: maxCount + 1)
        for m in 1 ... maxCount {
            var next = [Double](repeating: .infinity, count: p)
            for b in m ..< p {
                let i = points[b]
                var a = b - 1
                while a >= m - 1 {
                    let j = points[a]
                    if tokenPrefix[i] - tokenPrefix[j] > f.capacity { break }
                    if best[a].isFinite {
                        let estimate = f.estimate(
                            longest: j, rest: workPrefix[i] - workPrefix[j + 1], restTokens: tokenPrefix[i] - tokenPrefix[j + 1],
                            restShortest: f.lengths[i - 1],
                            restTime: { timePrefix[i * d + $0] - timePrefix[(j + 1) * d + $0] }, memory: memory)
                        if best[a] + estimate < next[b] { next[b] = best[a] + estimate; cut[m][b] = a }
                    }
                    a -= 1
                }
            }
            best = next
            if best[p - 1].isFinite {
                var ranges: [Range<Int>] = []
                var end = p - 1
                for parts in stride(from: m, through: 1, by: -1) {
                    // A finite best[p - 1] was reached through a cut at every part.
                    let start = cut[parts][end]!
                    ranges.append(points[start] ..< points[end])
                    end = start
                }
                result[m] = ranges.reversed()
            }
        }
        return result
    }

    /// Longest first, each sequence joins the micro-batch whose estimated makespan grows
    /// least (so short sequences fill the idle GPUs beside long ones), within token capacity.
    /// Returns member indices per micro-batch, or nil if some sequence finds no room.
    ///
    /// - Complexity: O(K x M x D).
    static func interleaved(_ f: Figures, count: Int) -> [[Int]]? {
        var members = [[Int]](repeating: [], count: count)
        var rest = [Double](repeating: 0, count: count)
        // restTimes[b * D + k]: time of micro-batch b's sequences but its longest at degrees[k].
        let d = f.degrees.count
        var restTimes = [Double](repeating: 0, count: count * d)
        var current = [Double](repeating: 0, count: count)
        var tokens = [Int](repeating: 0, count: count)
        for i in f.lengths.indices {
            var chosen: Int?, chosenIncrease = Double.infinity, chosenEstimate = 0.0
            for b in 0 ..< count where tokens[b] + f.lengths[i] <= f.capacity {
                let estimate = members[b].isEmpty
                    ? f.estimate(longest: i, rest: 0, restTokens: 0, restShortest: 0, restTime: { _ in 0 }, memory: false)
                    : f.estimate(longest: members[b][0], rest: rest[b] + f.work[i],
                                 restTokens: tokens[b] - f.lengths[members[b][0]] + f.lengths[i], restShortest: f.lengths[i],
                                 restTime: { restTimes[b * d + $0] + f.times[i][$0] }, memory: false)
                let increase = estimate - current[b]
                if increase < chosenIncrease - 1e-9 || (abs(increase - chosenIncrease) <= 1e-9 && chosen.map { tokens[b] < tokens[$0] } ?? false) {
                    chosen = b
                    chosenIncrease = increase
                    chosenEstimate = estimate
                }
            }
            guard let chosen else { return nil }
            if !members[chosen].isEmpty {
                rest[chosen] += f.work[i]
                for index in 0 ..< d { restTimes[chosen * d + index] += f.times[i][index] }
            }
            members[chosen].append(i)
            current[chosen] = chosenEstimate
            tokens[chosen] += f.lengths[i]
        }
        return members.filter { !$0.isEmpty }
    }

    /// Consecutive chunks, longest first, each filled up to the token capacity before the next
    /// opens: the fewest micro-batches a consecutive split can have, as Megatron's scheduler
    /// fills them. Nil if a sequence alone exceeds the capacity.
    ///
    /// - Complexity: O(K).
    static func filled(_ f: Figures) -> [Range<Int>]? {
        var ranges: [Range<Int>] = []
        var start = 0, tokens = 0
        for (i, length) in f.lengths.enumerated() {
            guard length <= f.capacity else { return nil }
            if tokens + length > f.capacity {
                ranges.append(start ..< i)
                start = i
                tokens = 0
            }
            tokens += length
        }
        if start < f.lengths.count { ranges.append(start ..< f.lengths.count) }
        return ranges
    }

    /// `split` with the shortest sequences of its later micro-batches (last first) moved into
    /// the first until it holds `share` of the room between its tokens and `capacity`.
    ///
    /// - Complexity: O(K).
    static func frontLoaded(_ split: [[Int]], lengths: [Int], capacity: Double, share: Double) -> [[Int]] {
        var result = split
        var tokens = Double(split[0].reduce(0) { $0 + lengths[$1] })
        let target = tokens + share * (capacity - tokens)
        var from = result.count - 1
        while from > 0, tokens < target {
            guard let i = result[from].last else { from -= 1; continue }
            guard tokens + Double(lengths[i]) <= target else { break }
            result[from].removeLast()
            result[0].append(i)
            tokens += Double(lengths[i])
        }
        result[0].sort()  // batch order: longest first
        return result.filter { !$0.isEmpty }
    }
}
