/// A plan before it is placed on ranks: micro-batches that run one after another, each a list
/// of sequence-parallel groups that run side by side. Solvers answer with one (members are
/// indices into their batch); `Plan(strategy:costModel:sequences:schedule:lowerBoundMS:solver:)`
/// takes one whose members are sequence ids.
///
///     let schedule = Schedule([[.init(degree: 4, members: [0]), .init(degree: 4, members: [1, 2])]])
///     schedule.stepTime(model: model) { lengths[$0] }
public struct Schedule: Hashable, Sendable {
    /// A sequence-parallel group: its degree and the sequences it trains.
    public struct Group: Hashable, Sendable {
        public var degree: Int
        public var members: [Int]

        public init(degree: Int, members: [Int]) {
            self.degree = degree
            self.members = members
        }
    }

    public var microBatches: [[Group]]

    public init(_ microBatches: [[Group]] = []) {
        self.microBatches = microBatches
    }

    /// How long a micro-batch lasts: its slowest group (eq. 13-14). `length` gives each
    /// member's tokens; members it has no length for are left out.
    ///
    /// - Complexity: O(members).
    public static func makespan(of groups: [Group], model: CostModel, length: (Int) -> Int?) -> Double {
        groups.map { model.groupTime(lengths: $0.members.compactMap(length), degree: $0.degree) }.reduce(0, max)
    }

    /// The step time: the sum of the micro-batches' makespans. Every step time on the planning
    /// path and the simulator's are this one sum.
    ///
    /// - Complexity: O(members).
    public func stepTime(model: CostModel, length: (Int) -> Int?) -> Double {
        microBatches.reduce(0) { $0 + Self.makespan(of: $1, model: model, length: length) }
    }
}
