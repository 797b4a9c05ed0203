/// Bucketing of docs/PAPER.md section 3: sorted lengths are grouped into at most `Q` buckets, each
/// standing for its members at its largest length, so that the MILP's variables are counts
/// per bucket rather than one per sequence. The DP minimises the padding
/// `sum over buckets of (members x upper bound - their tokens)`.
///
///     let buckets = Bucketing.buckets(lengths: [100, 120, 4_000, 4_096], count: 2)
///     // [Bucket(upperBound: 120, members: 0..<2), Bucket(upperBound: 4096, members: 2..<4)]
public enum Bucketing {
    /// The paper's default bucket count.
    public static let defaultCount = 16

    public struct Bucket: Hashable, Sendable {
        /// The largest length in the bucket: every member is planned as this long.
        public var upperBound: Int
        /// Indices into the ascending length list.
        public var members: Range<Int>
    }

    /// Buckets for lengths sorted ascending, in ascending order; equal lengths always share a
    /// bucket.
    ///
    /// - Complexity: O(Q x V^2) for V distinct lengths.
    public static func buckets(lengths: [Int], count q: Int) -> [Bucket] {
        precondition(zip(lengths, lengths.dropFirst()).allSatisfy { $0 <= $1 }, "lengths must be ascending")
        // Work on distinct values with multiplicities: equal lengths never need splitting.
        var values: [Int] = [], counts: [Int] = [], starts: [Int] = []
        for (i, length) in lengths.enumerated() {
            if values.last == length { counts[counts.count - 1] += 1 } else {
                values.append(length); counts.append(1); starts.append(i)
            }
        }
        let v = values.count
        guard v > 0 else { return [] }
        let q = max(1, min(q, v))
        var countPrefix = [0], tokenPrefix = [0]
        for i in 0 ..< v {
            countPrefix.append(countPrefix[i] + counts[i])
            tokenPrefix.append(tokenPrefix[i] + counts[i] * values[i])
        }
        // Padding of one bucket holding distinct values j..<i.
        func padding(_ j: Int, _ i: Int) -> Int {
            (countPrefix[i] - countPrefix[j]) * values[i - 1] - (tokenPrefix[i] - tokenPrefix[j])
        }
        var best = (0 ... v).map { padding(0, max($0, 1)) }
        best[0] = 0
        var cut = Array(repeating: [Int](repeating: 0, count: v + 1), count: q + 1)
        for b in stride(from: 2, through: q, by: 1) {
            var next = best
            for i in b ... v {
                for j in (b - 1) ..< i {
                    let candidate = best[j] + padding(j, i)
                    if candidate < next[i] { next[i] = candidate; cut[b][i] = j }
                }
            }
            best = next
        }
        // Reconstruct. cut[b][i] == 0 means b buckets did no better than b - 1 for the first i
        // values (a real cut is never 0 for b >= 2).
        var result: [Bucket] = []
        var end = v
        var b = q
        while end > 0 {
            if b >= 2 && cut[b][end] == 0 { b -= 1; continue }
            let start = b >= 2 ? cut[b][end] : 0
            result.append(Bucket(upperBound: values[end - 1], members: starts[start] ..< countPrefix[end]))
            end = start
            b -= 1
        }
        return result.reversed()
    }
}
