import Foundation
import Testing
@testable import FlexSPPlanner

/// `Parallel`: results in index order, and one budget of threads for nested maps (a plan's
/// candidates, and the blocks inside each candidate's packing).
@Suite struct ParallelTests {
    /// Pieces running at once, and the most seen.
    final class Gauge: @unchecked Sendable {
        private var now = 0
        private(set) var most = 0
        private let lock = NSLock()

        func enter() { lock.withLock { now += 1; most = max(most, now) } }
        func leave() { lock.withLock { now -= 1 } }
    }

    /// An outer map of 6 pieces, each with an inner map of 4 leaves that take a few ms.
    static func nested(threads: Int, gauge: Gauge) async -> [[Int]] {
        await Parallel.withThreads(threads) {
            await Parallel.map(6) { i in
                await Parallel.map(4) { j in
                    gauge.enter()
                    try? await Task.sleep(for: .milliseconds(3))
                    gauge.leave()
                    return 10 * i + j
                }
            }
        }
    }

    @Test(arguments: [1, 2, 3])
    func nestedMapsStayWithinTheBudgetAndKeepTheOrder(threads: Int) async {
        let gauge = Gauge()
        let results = await Self.nested(threads: threads, gauge: gauge)
        #expect(results == (0 ..< 6).map { i in (0 ..< 4).map { 10 * i + $0 } })
        #expect(gauge.most <= threads, "\(gauge.most) pieces ran at once on a budget of \(threads)")
        // A budget above one is used: the leaves sleep, so a helper always gets to start one.
        if threads > 1 { #expect(gauge.most >= 2) }
    }

    /// A solver called inside a plan keeps the plan's budget: nesting adds no threads.
    @Test func anInnerBudgetDoesNotAddThreads() async {
        let gauge = Gauge()
        _ = await Parallel.withThreads(2) { await Self.nested(threads: 8, gauge: gauge) }
        #expect(gauge.most <= 2)
    }
}
