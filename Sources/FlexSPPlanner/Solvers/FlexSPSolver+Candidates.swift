import FlexSPCore

/// The candidates the solver packs: splits of the batch, some with seed packings.
extension FlexSPSolver {
    /// A split of the batch into micro-batches (batch indices, longest first in each), with
    /// optionally a packing of each to start from (member indices local to the micro-batch).
    struct Candidate: Sendable {
        var split: [[Int]]
        var seeds: [GroupPacker.Packing]?

        init(split: [[Int]]) {
            self.split = split.filter { !$0.isEmpty }
        }

        /// Another strategy's plan (groups of batch indices) as a split and seed packings.
        init(schedule: Schedule) {
            var split: [[Int]] = []
            var seeds: [GroupPacker.Packing] = []
            for groups in schedule.microBatches where !groups.isEmpty {
                let members = groups.flatMap(\.members).sorted()
                var local: [Int: Int] = [:]
                for (position, i) in members.enumerated() { local[i] = position }
                split.append(members)
                seeds.append(GroupPacker.Packing(
                    groups: groups.map { GroupPacker.Group(degree: $0.degree, members: $0.members.map { local[$0]! }) },
                    makespan: .infinity))
            }
            self.split = split
            self.seeds = seeds
        }
    }
}
