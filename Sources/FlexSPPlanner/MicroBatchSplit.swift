import FlexSPCore

/// Ways to divide a batch's sequences (sorted longest first) among `M` micro-batches. The
/// paper balances tokens (`Blaster.chunks`); a step's time is the *sum* of its micro-batches'
/// makespans, so FlexSP also tries splits that minimise an estimate of that sum.
///
/// A micro-batch's makespan is estimated by its lower bound `beta1 + max(W / N, t_max)`
/// (work over GPUs, or its longest sequence), which a good packing nearly reaches.
enum MicroBatchSplit {
    /// Per-sequence figures the splits need, for one set of allowed degrees.
    struct Figures {
        var work: [Double]
        var time: [Double]
        var lengths: [Int]
        var capacity: Int
        var beta1: Double
        var worldSize: Double

        init(lengths: [Int], model: CostModel, degrees: [Int]) {
            self.lengths = lengths
            var work: [Double] = [], time: [Double] = []
            for length in lengths {
                let usable = degrees.filter { model.fits(tokens: length, degree: $0) }
                work.append(usable.map { model.sequenceWork(length: length, degree: $0) }.min() ?? .infinity)
                time.append(usable.map { model.sequenceTime(length: length, degree: $0) }.min() ?? .infinity)
            }
            self.work = work
            self.time = time
            // Groups of one degree d hold at most (N / d) x capacity(d) tokens in all.
            let n = model.worldSize
            capacity = degrees.map { (n / $0) * model.tokenCapacity(degree: $0) }.max() ?? 0
            beta1 = model.beta1
            worldSize = Double(n)
        }
    }

    /// Consecutive chunks minimising the sum of estimated makespans, each within the token
    /// capacity, for every M up to `maxCount` at once (`result[M]`; nil where none fits).
    ///
    /// - Complexity: O(maxCount x K^2).
    static func timeBalanced(_ f: Figures, maxCount: Int) -> [[Range<Int>]?] {
        let k = f.lengths.count
        var workPrefix = [0.0], tokenPrefix = [0]
        for i in 0 ..< k {
            workPrefix.append(workPrefix[i] + f.work[i])
            tokenPrefix.append(tokenPrefix[i] + f.lengths[i])
        }
        let maxCount = min(maxCount, k)
        var best = [Double](repeating: .infinity, count: k + 1)
        best[0] = 0
        var cut = [[Int]](repeating: [Int](repeating: -1, count: k + 1), count: maxCount + 1)
        var result = [[Range<Int>]?](repeating: nil, count: maxCount + 1)
        for m in 1 ... max(1, maxCount) where k > 0 {
            var next = [Double](repeating: .infinity, count: k + 1)
            for i in m ... k {
                // The last chunk is j..<i; the longest sequence of j..<i is j (sorted).
                var j = i - 1
                while j >= m - 1 {
                    if tokenPrefix[i] - tokenPrefix[j] > f.capacity { break }
                    if best[j].isFinite {
                        let estimate = f.beta1 + max((workPrefix[i] - workPrefix[j]) / f.worldSize, f.time[j])
                        let total = best[j] + estimate
                        if total < next[i] { next[i] = total; cut[m][i] = j }
                    }
                    j -= 1
                }
            }
            best = next
            if best[k].isFinite {
                var ranges: [Range<Int>] = []
                var end = k
                for parts in stride(from: m, through: 1, by: -1) {
                    let start = cut[parts][end]
                    ranges.append(start ..< end)
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
    /// - Complexity: O(K x M).
    static func interleaved(_ f: Figures, count: Int) -> [[Int]]? {
        var members = [[Int]](repeating: [], count: count)
        var work = [Double](repeating: 0, count: count)
        var longest = [Double](repeating: 0, count: count)
        var tokens = [Int](repeating: 0, count: count)
        for i in f.lengths.indices {
            var chosen = -1, chosenIncrease = Double.infinity
            for b in 0 ..< count where tokens[b] + f.lengths[i] <= f.capacity {
                let before = members[b].isEmpty ? 0 : f.beta1 + max(work[b] / f.worldSize, longest[b])
                let after = f.beta1 + max((work[b] + f.work[i]) / f.worldSize, max(longest[b], f.time[i]))
                let increase = after - before
                if increase < chosenIncrease - 1e-9 || (abs(increase - chosenIncrease) <= 1e-9 && tokens[b] < tokens[chosen]) {
                    chosen = b
                    chosenIncrease = increase
                }
            }
            guard chosen >= 0 else { return nil }
            members[chosen].append(i)
            work[chosen] += f.work[i]
            longest[chosen] = max(longest[chosen], f.time[i])
            tokens[chosen] += f.lengths[i]
        }
        return members.filter { !$0.isEmpty }
    }
}
