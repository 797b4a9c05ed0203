import FlexSPCore

/// A solver's answer before it becomes a `Plan`: its schedule, whose members are sequence ids,
/// and the step time the cost model gives it.
public struct Solution: Sendable {
    public var schedule: Schedule
    public var stepTime: Double

    /// A solution from a schedule whose members are indices into the batch.
    init(batch: Batch, schedule: Schedule) {
        self.schedule = Schedule(schedule.microBatches.map { groups in
            groups.map { Schedule.Group(degree: $0.degree, members: $0.members.map { batch.ids[$0] }) }
        })
        stepTime = schedule.stepTime(model: batch.costModel) { batch.lengths[$0] }
    }
}
