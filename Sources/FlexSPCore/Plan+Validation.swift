import Foundation

/// The rules of docs/DESIGN.md's plan section: what makes a plan document valid.
extension Simulator {
    /// Every way the plan breaks the rules, in document order; empty when it is valid.
    ///
    /// Rules: the plan's world size is its cost model's; sequence ids are unique and lengths
    /// positive; every sequence is in exactly one group of one micro-batch; in a micro-batch,
    /// groups occupy disjoint rank ranges `[first_rank, first_rank + degree)` inside the world,
    /// with `first_rank` a multiple of `degree`; degrees are powers of two up to `max_degree`;
    /// each group's memory fits the budget; stated tokens and estimates match the cost model.
    ///
    /// - Complexity: O(sequences + groups x log groups).
    public static func violations(in plan: Plan) -> [PlanViolation] {
        var found: [PlanViolation] = []
        let model = plan.costModel
        if plan.worldSize != model.worldSize {
            found.append(.worldSizeMismatch(plan: plan.worldSize, costModel: model.worldSize))
        }
        if plan.sequences.isEmpty { found.append(.noSequences) }
        for (field, value) in [("lower_bound_ms", plan.lowerBoundMS), ("solver.wall_ms", plan.solver.wallMS)]
        where !(value.isFinite && value >= 0) {
            found.append(.negativeNumber(field: field, value: value))
        }
        var lengthOf: [Int: Int] = [:]
        for s in plan.sequences {
            if lengthOf[s.id] != nil { found.append(.duplicateSequenceID(s.id)) }
            if s.length <= 0 { found.append(.nonPositiveLength(id: s.id, length: s.length)) }
            if s.length > Limits.maxSequenceLength { found.append(.lengthTooLarge(id: s.id, length: s.length)) }
            // Lengths past the limit are left out of the sums below, so they cannot overflow.
            lengthOf[s.id] = min(s.length, Limits.maxSequenceLength)
        }
        var placedIn: [Int: GroupLocation] = [:]
        var stepTime = 0.0
        for (m, microBatch) in plan.microBatches.enumerated() {
            if microBatch.groups.isEmpty { found.append(.emptyMicroBatch(microBatch: m)) }
            var slowest = 0.0
            for (g, group) in microBatch.groups.enumerated() {
                let at = GroupLocation(microBatch: m, group: g)
                let d = group.degree
                if d < 1 || d & (d - 1) != 0 || d > model.maxDegree || d > plan.worldSize {
                    found.append(.badDegree(at, degree: d, maxDegree: min(model.maxDegree, plan.worldSize)))
                    continue
                }
                let (lastStart, overflow) = plan.worldSize.subtractingReportingOverflow(d)
                if group.firstRank < 0 || group.firstRank % d != 0 || overflow || group.firstRank > lastStart {
                    found.append(.misalignedGroup(at, firstRank: group.firstRank, degree: d, worldSize: plan.worldSize))
                }
                if group.sequenceIDs.isEmpty { found.append(.emptyGroup(at)) }
                var lengths: [Int] = []
                for id in group.sequenceIDs {
                    guard let length = lengthOf[id] else { found.append(.unknownSequence(at, id: id)); continue }
                    if let earlier = placedIn[id] {
                        found.append(.sequencePlacedTwice(id: id, first: earlier, second: at))
                    } else {
                        placedIn[id] = at
                    }
                    lengths.append(length)
                }
                // At most Limits.maxSequences x Limits.maxSequenceLength per sequence: no overflow
                // below 2^63 for any plan that names fewer than 2^23 sequences per group.
                let tokens = lengths.reduce(0) { $0.addingReportingOverflow($1).overflow ? .max : $0 + $1 }
                if tokens != group.tokens { found.append(.tokenCountMismatch(at, stated: group.tokens, actual: tokens)) }
                let memory = model.groupMemoryMB(tokens: tokens, degree: d)
                if !model.fits(tokens: tokens, degree: d) {
                    found.append(.outOfMemory(at, memoryMB: memory, budgetMB: model.memoryBudgetMB))
                }
                let time = model.groupTime(lengths: lengths, degree: d)
                if !close(group.estMS, time) { found.append(.estimateMismatch(.group(at), stated: group.estMS, actual: time)) }
                if !close(group.memoryMB, memory) {
                    found.append(.memoryEstimateMismatch(at, stated: group.memoryMB, actual: memory))
                }
                slowest = max(slowest, time)
            }
            for (a, b) in overlappingGroups(microBatch.groups) {
                found.append(.overlappingGroups(microBatch: m, first: a, second: b))
            }
            if !close(microBatch.estMS, slowest) {
                found.append(.estimateMismatch(.microBatch(m), stated: microBatch.estMS, actual: slowest))
            }
            stepTime += slowest
        }
        for s in plan.sequences where placedIn[s.id] == nil { found.append(.sequenceNotPlaced(id: s.id)) }
        if !close(plan.estStepMS, stepTime) { found.append(.estimateMismatch(.step, stated: plan.estStepMS, actual: stepTime)) }
        if plan.lowerBoundMS > stepTime * (1 + 1e-9) + 1e-6 {
            found.append(.lowerBoundAboveEstimate(lowerBound: plan.lowerBoundMS, estimate: stepTime))
        }
        return found
    }

    /// Pairs of group indices whose rank ranges intersect (after sorting by first rank,
    /// overlaps show up between neighbours).
    private static func overlappingGroups(_ groups: [Plan.Group]) -> [(Int, Int)] {
        let order = groups.indices.sorted { groups[$0].firstRank < groups[$1].firstRank }
        var pairs: [(Int, Int)] = []
        // The furthest rank range end so far, and the group that reaches it.
        var reach: (end: Int, owner: Int)?
        for i in order {
            if let reach, groups[i].firstRank < reach.end { pairs.append((min(reach.owner, i), max(reach.owner, i))) }
            let (end, overflow) = groups[i].firstRank.addingReportingOverflow(groups[i].degree)
            if overflow || end > reach?.end ?? .min {
                reach = (overflow ? .max : end, i)
            }
        }
        return pairs
    }

    /// Stated estimates are rounded by JSON writers; a relative 1e-6 tolerance accepts that.
    private static func close(_ stated: Double, _ actual: Double) -> Bool {
        abs(stated - actual) <= 1e-6 * max(1, abs(actual))
    }
}

/// Where a group sits in a plan (0-based indices into `micro_batches` and `groups`).
public struct GroupLocation: Hashable, Sendable, CustomStringConvertible {
    public var microBatch: Int
    public var group: Int
    public var description: String { "micro_batches[\(microBatch)].groups[\(group)]" }
}

/// One broken rule of a plan, with where it is.
public enum PlanViolation: Hashable, Sendable, CustomStringConvertible {
    public enum EstimateSite: Hashable, Sendable {
        case group(GroupLocation)
        case microBatch(Int)
        case step
    }

    case worldSizeMismatch(plan: Int, costModel: Int)
    case noSequences
    case negativeNumber(field: String, value: Double)
    case lengthTooLarge(id: Int, length: Int)
    case duplicateSequenceID(Int)
    case nonPositiveLength(id: Int, length: Int)
    case emptyMicroBatch(microBatch: Int)
    case badDegree(GroupLocation, degree: Int, maxDegree: Int)
    case misalignedGroup(GroupLocation, firstRank: Int, degree: Int, worldSize: Int)
    case emptyGroup(GroupLocation)
    case unknownSequence(GroupLocation, id: Int)
    case sequencePlacedTwice(id: Int, first: GroupLocation, second: GroupLocation)
    case sequenceNotPlaced(id: Int)
    case overlappingGroups(microBatch: Int, first: Int, second: Int)
    case tokenCountMismatch(GroupLocation, stated: Int, actual: Int)
    case outOfMemory(GroupLocation, memoryMB: Double, budgetMB: Double)
    case estimateMismatch(EstimateSite, stated: Double, actual: Double)
    case memoryEstimateMismatch(GroupLocation, stated: Double, actual: Double)
    case lowerBoundAboveEstimate(lowerBound: Double, estimate: Double)

    public var description: String {
        switch self {
        case .worldSizeMismatch(let plan, let model):
            return "world_size is \(plan) but the cost model is for \(model) GPUs"
        case .noSequences:
            return "sequences is empty: a plan must train at least one sequence"
        case .negativeNumber(let field, let value):
            return "\(field) is \(value); it must be a finite number of zero or more"
        case .lengthTooLarge(let id, let length):
            return "sequences: id \(id) has length \(length), over the limit of \(Limits.maxSequenceLength) tokens"
        case .duplicateSequenceID(let id):
            return "sequences: id \(id) appears more than once"
        case .nonPositiveLength(let id, let length):
            return "sequences: id \(id) has length \(length); lengths must be positive"
        case .emptyMicroBatch(let m):
            return "micro_batches[\(m)] has no groups"
        case .badDegree(let at, let degree, let maxDegree):
            return "\(at): degree \(degree) is not a power of two between 1 and \(maxDegree)"
        case .misalignedGroup(let at, let firstRank, let degree, let worldSize):
            let end = firstRank.addingReportingOverflow(degree)
            return "\(at): ranks [\(firstRank), \(end.overflow ? "overflow" : String(end.partialValue))) must lie in [0, \(worldSize)) and start at a multiple of the degree \(degree)"
        case .emptyGroup(let at):
            return "\(at) holds no sequences"
        case .unknownSequence(let at, let id):
            return "\(at): sequence id \(id) is not in 'sequences'"
        case .sequencePlacedTwice(let id, let first, let second):
            return "sequence \(id) is placed twice: in \(first) and in \(second)"
        case .sequenceNotPlaced(let id):
            return "sequence \(id) is in no group"
        case .overlappingGroups(let m, let a, let b):
            return "micro_batches[\(m)]: groups[\(a)] and groups[\(b)] share ranks"
        case .tokenCountMismatch(let at, let stated, let actual):
            return "\(at): tokens is \(stated) but its sequences hold \(actual)"
        case .outOfMemory(let at, let memory, let budget):
            return "\(at) needs \(fmt(memory)) MB per GPU, over the \(fmt(budget)) MB budget"
        case .estimateMismatch(let site, let stated, let actual):
            let place = switch site {
            case .group(let at): "\(at).est_ms"
            case .microBatch(let m): "micro_batches[\(m)].est_ms"
            case .step: "est_step_ms"
            }
            return "\(place) is \(fmt(stated)) but the cost model gives \(fmt(actual))"
        case .memoryEstimateMismatch(let at, let stated, let actual):
            return "\(at).memory_mb is \(fmt(stated)) but the cost model gives \(fmt(actual))"
        case .lowerBoundAboveEstimate(let bound, let estimate):
            return "lower_bound_ms \(fmt(bound)) exceeds the plan's own step time \(fmt(estimate)); the bound is wrong"
        }
    }
}

private func fmt(_ x: Double) -> String {
    String(format: "%.3f", x)
}
