import FlexSPCore

/// The Sequence Blaster of docs/PAPER.md section 3: a global batch usually holds more tokens than
/// the cluster, so it runs as `M` micro-batches one after another.
///
///     let m = Blaster.minimumMicroBatches(totalTokens: 520_000, costModel: model)  // 2
///     let chunks = Blaster.chunks(lengths: sortedLongestFirst, count: m)
public enum Blaster {
    /// How many micro-batches the paper tries beyond the minimum: M in [M_min, M_min + 4].
    public static let extraMicroBatches = 4

    /// `M_min = ceil(batch tokens / cluster token capacity)`.
    public static func minimumMicroBatches(totalTokens: Int, costModel: CostModel) -> Int {
        let capacity = costModel.tokenCapacity(degree: costModel.worldSize)
        return max(1, (totalTokens + capacity - 1) / capacity)
    }

    /// Cuts a sorted list into `count` consecutive non-empty chunks minimising the largest
    /// chunk's token count (the paper's DP), as index ranges in order.
    ///
    /// The DP `best[m][i] = min over j of max(best[m-1][j], tokens(j..<i))` pairs a term that
    /// grows with `j` with one that shrinks, so the optimal `j` sits at their crossing and is
    /// found by binary search.
    ///
    /// - Complexity: O(count x K log K) for K lengths.
    public static func chunks(lengths: [Int], count: Int) -> [Range<Int>] {
        chunks(lengths: lengths, counts: count ... count)[0]
    }

    /// `chunks(lengths:count:)` for every count in `counts` (each entry in that order), from
    /// one pass of the DP: the cut table of `m` parts does not depend on the final count.
    ///
    /// - Complexity: O(counts.upperBound x K log K) for K lengths.
    public static func chunks(lengths: [Int], counts: ClosedRange<Int>) -> [[Range<Int>]] {
        let k = lengths.count
        let m = min(counts.upperBound, k)
        guard m > 1 else { return counts.map { _ in k == 0 ? [] : [0 ..< k] } }
        var prefix = [0]
        prefix.reserveCapacity(k + 1)
        for length in lengths { prefix.append(prefix.last! + length) }
        // best[i]: the smallest largest-chunk over the first i items cut into the current m.
        var best = prefix.map { $0 }  // m = 1
        var cut = Array(repeating: [Int](repeating: 0, count: k + 1), count: m + 1)
        for parts in 2 ... m {
            var next = [Int](repeating: .max, count: k + 1)
            for i in parts ... k {
                // j ranges over [parts - 1, i - 1]: the last chunk is j..<i.
                var lo = parts - 1, hi = i - 1
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if best[mid] >= prefix[i] - prefix[mid] { hi = mid } else { lo = mid + 1 }
                }
                var choice = lo
                var value = max(best[lo], prefix[i] - prefix[lo])
                if lo > parts - 1 {
                    let other = max(best[lo - 1], prefix[i] - prefix[lo - 1])
                    if other < value { value = other; choice = lo - 1 }
                }
                next[i] = value
                cut[parts][i] = choice
            }
            best = next
        }
        return counts.map { count in
            var ranges: [Range<Int>] = []
            var end = k
            for parts in stride(from: min(count, k), to: 1, by: -1) {
                let start = cut[parts][end]
                ranges.append(start ..< end)
                end = start
            }
            ranges.append(0 ..< end)
            return ranges.reversed()
        }
    }
}
