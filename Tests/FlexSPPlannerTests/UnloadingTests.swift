import FlexSPCore
import Testing
@testable import FlexSPPlanner

/// `FlexSPSolver.unload`: a short sequence that rides in a long one's group moves to the
/// micro-batch with room for it.
@Suite struct UnloadingTests {
    let model = try! CostModel.preset(model: "gpt-7b", cluster: "a100-40g-8x8", maxContext: 393_216, worldSize: 8)

    @Test func aShortSequenceLeavesTheLongOnesGroupForAnIdleMicroBatch() async throws {
        // Batch order, longest first: 0 needs all 8 GPUs; 2 rides with it. Micro-batch 1 is set
        // by its 3,000-token group; its 1,000-token groups have the time to take sequence 2.
        #expect(model.minimumDegree(length: 20_000) == 8)
        let lengths = [20_000, 3_000, 2_000] + [Int](repeating: 1_000, count: 7)
        let schedule = Schedule([
            [.init(degree: 8, members: [0, 2])],
            ([1] + Array(3 ..< 10)).map { .init(degree: 1, members: [$0]) },
        ])
        let packer = GroupPacker(model: model, degrees: model.degrees)
        let step = { (s: Schedule) in s.stepTime(model: model) { lengths[$0] } }
        let unloaded = await FlexSPSolver.unload(schedule, packer: packer, lengths: lengths)
        #expect(step(unloaded) < step(schedule) - 1e-6)
        #expect(unloaded.microBatches[0] == [.init(degree: 8, members: [0])])
        #expect(unloaded.microBatches.flatMap { $0.flatMap(\.members) }.sorted() == Array(0 ..< 10))
        #expect(unloaded.microBatches.allSatisfy { $0.reduce(0) { $0 + $1.degree } <= 8 })
    }

    @Test func aMoveThatDoesNotHelpIsNotMade() async throws {
        // Micro-batch 1 is full to its memory: it cannot take sequence 1, so the plan stays.
        let capacity = model.tokenCapacity(degree: 1)
        let lengths = [20_000, 2_000] + [Int](repeating: capacity, count: 8)
        let schedule = Schedule([
            [.init(degree: 8, members: [0, 1])],
            (2 ..< 10).map { .init(degree: 1, members: [$0]) },
        ])
        let packer = GroupPacker(model: model, degrees: model.degrees)
        #expect(await FlexSPSolver.unload(schedule, packer: packer, lengths: lengths) == schedule)
    }
}
