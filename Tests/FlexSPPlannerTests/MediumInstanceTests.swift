import FlexSPCore
import Foundation
import Testing
@testable import FlexSPPlanner

/// flexsp against exact optima on medium instances (16 and 32 GPUs, 20-40 sequences) that fit
/// one micro-batch: CBC solves the MILP with every length in its own bucket (so it is exact)
/// and must prove optimality; a second micro-batch is ruled out when even its lower bound,
/// `2 beta1 + W / N`, is above that optimum.
@Suite struct MediumInstanceTests {
    struct Instance: CustomTestStringConvertible {
        var worldSize: Int
        var count: Int
        var seed: Int
        var testDescription: String { "\(worldSize) GPUs, \(count) sequences, seed \(seed)" }
    }

    /// Seeds where CBC proves the optimum within seconds (a scan of seeds 10-21 at 20-40
    /// sequences: most balanced instances it cannot prove in 60 s, and those are left out).
    static let instances = [
        Instance(worldSize: 16, count: 20, seed: 15), Instance(worldSize: 16, count: 20, seed: 19),
        Instance(worldSize: 16, count: 28, seed: 20), Instance(worldSize: 32, count: 30, seed: 20),
    ]

    /// Long-tailed lengths that together fit one micro-batch of the cluster.
    func lengths(_ instance: Instance, model: CostModel) -> [Int] {
        var rng = SplitMix(state: UInt64(instance.seed) &* 104_729)
        let capacity = model.tokenCapacity(degree: model.worldSize)
        var lengths = (0 ..< instance.count).map { _ -> Int in
            let u = Double.random(in: 0 ..< 1, using: &rng)
            return max(128, Int(300 * pow(60.0, u * u * u)))  // 300 ... 18,000 tokens
        }
        // Scale down to 90% of the capacity if needed.
        let total = lengths.reduce(0, +)
        if total > capacity * 9 / 10 { lengths = lengths.map { max(64, $0 * (capacity * 9 / 10) / total) } }
        return lengths
    }

    /// CBC proves these in well under a second when the machine is idle, but its time limit is
    /// wall-clock: on a loaded machine a proof can miss it. Instances it does not prove are
    /// skipped (and counted); at least two must be proven.
    @Test func flexspIsWithinAPercentOfTheProvenOptimum() async throws {
        var proven = 0
        for instance in Self.instances {
            let model = try CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216,
                                             worldSize: instance.worldSize)
            let batch = try Batch(lengths: lengths(instance, model: model), costModel: model)
            let exact = MILPSolver(timeLimitSeconds: 30, bucketCount: batch.count)
            let solved = try #require(await exact.solveMicroBatch(ids: batch.ids, lengths: batch.lengths, model: model, seconds: 30))
            guard solved.proven else { continue }
            proven += 1
            let optimum = solved.makespan
            let work = batch.lengths.reduce(0.0) { $0 + model.minimumWork(length: $1)! }
            #expect(optimum <= 2 * model.beta1 + work / Double(model.worldSize), "\(instance): a second micro-batch is not ruled out")

            let ours = try await FlexSPSolver().solve(batch).stepTime
            #expect(ours >= optimum * (1 - 1e-9), "\(instance): flexsp below the proven optimum: scoring bug")
            // Measured when written: ratios 1, 1.00003, 1, 1.
            #expect(ours <= optimum * 1.01, "\(instance): flexsp \(ours) ms, optimum \(optimum) ms")
        }
        #expect(proven >= 2, "CBC proved only \(proven) of \(Self.instances.count) optima within 30 s")
    }
}
