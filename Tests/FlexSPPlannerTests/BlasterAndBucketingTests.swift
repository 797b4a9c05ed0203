import FlexSPCore
import Testing
@testable import FlexSPPlanner

@Suite struct BlasterTests {
    @Test func minimumMicroBatchesIsTokensOverCapacity() throws {
        let model = try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216)
        #expect(Blaster.minimumMicroBatches(totalTokens: 410_108, costModel: model) == 1)
        #expect(Blaster.minimumMicroBatches(totalTokens: 410_109, costModel: model) == 2)
        #expect(Blaster.minimumMicroBatches(totalTokens: 1_000_000, costModel: model) == 3)
    }

    @Test(arguments: 0 ..< 40)
    func chunksMatchBruteForce(seed: Int) {
        var rng = SplitMix(state: UInt64(seed))
        let k = Int.random(in: 1 ... 9, using: &rng)
        let lengths = (0 ..< k).map { _ in Int.random(in: 1 ... 5_000, using: &rng) }.sorted(by: >)
        for m in 1 ... k {
            let chunks = Blaster.chunks(lengths: lengths, count: m)
            #expect(chunks.count == m)
            #expect(chunks.first?.lowerBound == 0 && chunks.last?.upperBound == k)
            #expect(zip(chunks, chunks.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound && !$0.isEmpty })
            let largest = chunks.map { lengths[$0].reduce(0, +) }.max()!
            let optimum = BruteForce.compositions(k, into: m).map { runs in
                var start = 0
                return runs.map { run in defer { start += run }; return lengths[start ..< start + run].reduce(0, +) }.max()!
            }.min()!
            #expect(largest == optimum, "lengths \(lengths), M = \(m)")
        }
    }

    @Test func chunksForManyCountsMatchEachCount() {
        var rng = SplitMix(state: 7)
        let lengths = (0 ..< 300).map { _ in Int.random(in: 1 ... 50_000, using: &rng) }.sorted(by: >)
        let all = Blaster.chunks(lengths: lengths, counts: 3 ... 40)
        #expect(all.count == 38)
        for (offset, chunks) in all.enumerated() {
            #expect(chunks == Blaster.chunks(lengths: lengths, count: 3 + offset))
        }
    }

    @Test func frontLoadedMovesTheShortestIntoTheFirstMicroBatch() {
        let lengths = [90, 80, 70, 60, 50, 40, 30, 20, 10]
        let split = [[0, 1, 2], [3, 4, 5], [6, 7, 8]]  // tokens 240, 150, 60
        // Room 400 - 240 = 160; half of it is 80: 10, 20, 30 (60) fit, 40 more would not.
        let front = MicroBatchSplit.frontLoaded(split, lengths: lengths, capacity: 400, share: 0.5)
        #expect(front == [[0, 1, 2, 6, 7, 8], [3, 4, 5]])
        // No room: unchanged.
        #expect(MicroBatchSplit.frontLoaded(split, lengths: lengths, capacity: 240, share: 0.5) == split)
    }
}

@Suite struct BucketingTests {
    @Test func documentedExample() {
        let buckets = Bucketing.buckets(lengths: [100, 120, 4_000, 4_096], count: 2)
        #expect(buckets == [.init(upperBound: 120, members: 0 ..< 2), .init(upperBound: 4_096, members: 2 ..< 4)])
    }

    @Test(arguments: 0 ..< 40)
    func paddingMatchesBruteForce(seed: Int) {
        var rng = SplitMix(state: UInt64(1_000 + seed))
        let k = Int.random(in: 1 ... 9, using: &rng)
        let lengths = (0 ..< k).map { _ in Int.random(in: 1 ... 60, using: &rng) * 64 }.sorted()
        for q in 1 ... 5 {
            let buckets = Bucketing.buckets(lengths: lengths, count: q)
            #expect(buckets.count <= q)
            // Buckets tile the list in order and each upper bound is its largest member.
            #expect(buckets.first?.members.lowerBound == 0 && buckets.last?.members.upperBound == k)
            for (a, b) in zip(buckets, buckets.dropFirst()) { #expect(a.members.upperBound == b.members.lowerBound) }
            for b in buckets { #expect(b.upperBound == lengths[b.members.upperBound - 1]) }
            let padding = buckets.reduce(0) { total, b in total + b.members.reduce(0) { $0 + b.upperBound - lengths[$1] } }
            // Brute force over all cuts into at most q runs.
            var optimum = Int.max
            for parts in 1 ... min(q, k) {
                for runs in BruteForce.compositions(k, into: parts) {
                    var start = 0, total = 0
                    for run in runs {
                        let slice = lengths[start ..< start + run]
                        total += slice.reduce(0) { $0 + slice.last! - $1 }
                        start += run
                    }
                    optimum = min(optimum, total)
                }
            }
            #expect(padding == optimum, "lengths \(lengths), Q = \(q)")
        }
    }
}
