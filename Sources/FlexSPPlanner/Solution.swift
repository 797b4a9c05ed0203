import FlexSPCore

/// A solver's answer before it becomes a `Plan`: per micro-batch, its groups.
public struct Solution: Sendable {
    /// A sequence-parallel group: its degree and the ids of the sequences it trains.
    public struct Group: Sendable, Equatable {
        public var degree: Int
        public var sequenceIDs: [Int]

        public init(degree: Int, sequenceIDs: [Int]) {
            self.degree = degree
            self.sequenceIDs = sequenceIDs
        }
    }

    public var microBatches: [[Group]]
    /// The step time the cost model gives this solution.
    public var stepTime: Double

    public init(microBatches: [[Group]], stepTime: Double) {
        self.microBatches = microBatches
        self.stepTime = stepTime
    }
}

extension Solution {
    /// A solution from groups whose members are indices into the batch, timed by its cost model.
    init(batch: Batch, schedule: [[GroupPacker.Group]]) {
        let model = batch.costModel
        microBatches = schedule.map { groups in
            groups.map { Group(degree: $0.degree, sequenceIDs: $0.members.map { batch.ids[$0] }) }
        }
        stepTime = schedule.reduce(0) { step, groups in
            step + (groups.map { model.groupTime(lengths: $0.members.map { batch.lengths[$0] }, degree: $0.degree) }.max() ?? 0)
        }
    }
}
