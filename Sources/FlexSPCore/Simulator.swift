import Foundation

/// Scores plans with a cost model; `Plan+Validation.swift` checks them against every rule of
/// docs/DESIGN.md's plan section. Every strategy's plans are scored here, so strategies are
/// compared on equal terms.
///
///     let violations = Simulator.violations(in: plan)
///     if violations.isEmpty { print(Simulator.stepTime(of: plan)) }
public enum Simulator {
    /// The step time of a plan recomputed from its cost model and sequence lengths, ignoring
    /// the estimates the plan states.
    public static func stepTime(of plan: Plan) -> Double {
        var lengthOf: [Int: Int] = [:]
        for s in plan.sequences { lengthOf[s.id] = s.length }
        return plan.schedule.stepTime(model: plan.costModel) { lengthOf[$0] }
    }
}
