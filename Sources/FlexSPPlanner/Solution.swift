import FlexSPCore

/// A solver's answer before it becomes a `Plan`: per micro-batch, groups as (degree, ids).
public struct Solution: Sendable {
    public var microBatches: [[(degree: Int, sequenceIDs: [Int])]]
    /// The step time the cost model gives this solution.
    public var stepTime: Double

    public init(microBatches: [[(degree: Int, sequenceIDs: [Int])]], stepTime: Double) {
        self.microBatches = microBatches
        self.stepTime = stepTime
    }
}
