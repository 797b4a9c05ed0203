import FlexSPCore

/// Slack filling: sequences move into the idle time of other micro-batches.
extension FlexSPSolver {
    /// Search across micro-batches: every group that finishes before its micro-batch does has
    /// idle time (and a micro-batch may leave GPUs idle). Sequences of other micro-batches,
    /// longest first, move into that idle time where they fit it and the group's memory, so
    /// the slowest micro-batches stay as they are and the others lose work; those are then
    /// repacked (seeded with what is left of their groups), and the result is kept if the step
    /// got faster. A micro-batch left empty disappears, saving its `beta1`.
    ///
    /// - Complexity: O(M x (G + I) x K) for the moves, plus one packing per changed micro-batch.
    static func fillSlack(_ schedule: Schedule, packer: GroupPacker, lengths: [Int]) -> Schedule {
        let model = packer.model
        let length: (Int) -> Int? = { lengths[$0] }
        func time(_ group: GroupPacker.Group) -> Double { model.groupTime(lengths: group.members.map { lengths[$0] }, degree: group.degree) }
        func makespan(_ groups: [GroupPacker.Group]) -> Double { Schedule.makespan(of: groups, model: model, length: length) }
        var plan = schedule.microBatches
        // The micro-batch of each sequence (every sequence is in one).
        var home = [Int](repeating: 0, count: lengths.count)
        for (m, groups) in plan.enumerated() { for g in groups { for i in g.members { home[i] = m } } }
        let order = plan.indices.sorted { makespan(plan[$0]) > makespan(plan[$1]) }
        var changed = Set<Int>()
        var moved = [Bool](repeating: false, count: lengths.count)
        for a in order {
            let limit = makespan(plan[a])
            // Candidates: sequences of other micro-batches not yet moved, longest first.
            let pool = lengths.indices.filter { home[$0] != a && !moved[$0] }  // batch order: longest first
            guard !pool.isEmpty else { continue }
            var groups = plan[a]
            var times = groups.map(time)
            var tokens = groups.map { $0.members.reduce(0) { $0 + lengths[$1] } }
            var idle = model.worldSize - groups.reduce(0) { $0 + $1.degree }
            var took: [Int] = []
            for i in pool {
                // Into the group with the least idle time that holds it; else a new group on idle GPUs.
                var best: Int?, bestSlack = Double.infinity
                for g in groups.indices where tokens[g] + lengths[i] <= model.tokenCapacity(degree: groups[g].degree) {
                    let slack = limit - times[g] - model.sequenceTime(length: lengths[i], degree: groups[g].degree)
                    if slack >= 0 && slack < bestSlack { best = g; bestSlack = slack }
                }
                if best == nil, let d = packer.degrees.first(where: {
                    $0 <= idle && model.fits(tokens: lengths[i], degree: $0)
                        && model.beta1 + model.sequenceTime(length: lengths[i], degree: $0) <= limit
                }) {
                    groups.append(GroupPacker.Group(degree: d, members: []))
                    times.append(model.beta1)
                    tokens.append(0)
                    idle -= d
                    best = groups.count - 1
                }
                guard let g = best else { continue }
                groups[g].members.append(i)
                times[g] += model.sequenceTime(length: lengths[i], degree: groups[g].degree)
                tokens[g] += lengths[i]
                took.append(i)
            }
            guard !took.isEmpty else { continue }
            for i in took {
                let from = home[i]
                for g in plan[from].indices { plan[from][g].members.removeAll { $0 == i } }
                plan[from].removeAll { $0.members.isEmpty }
                changed.insert(from)
                home[i] = a
                moved[i] = true
            }
            plan[a] = groups
        }
        guard !changed.isEmpty else { return schedule }
        // Repack what lost sequences, keeping each one's remaining groups if they are better.
        for m in changed where !plan[m].isEmpty {
            let members = plan[m].flatMap(\.members).sorted()
            var local: [Int: Int] = [:]
            for (position, i) in members.enumerated() { local[i] = position }
            let seed = GroupPacker.Packing(
                groups: plan[m].map { GroupPacker.Group(degree: $0.degree, members: $0.members.map { local[$0]! }) },
                makespan: .infinity)
            guard let packing = packer.pack(lengths: members.map { lengths[$0] }, thorough: true, seed: seed) else { continue }
            plan[m] = packing.groups.map { GroupPacker.Group(degree: $0.degree, members: $0.members.map { members[$0] }) }
        }
        plan.removeAll { $0.isEmpty }
        let filled = Schedule(plan)
        return filled.stepTime(model: model, length: length) < schedule.stepTime(model: model, length: length) - 1e-9 ? filled : schedule
    }
}
