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
    /// Each candidate finds its group by binary search among the groups of each degree that
    /// can still take the shortest candidate (`OpenGroupIndex`), not by a scan of every group:
    /// at 16,384 GPUs the scan was most of the solve time. The choice is the scan's (least
    /// slack, ties to the first group).
    ///
    /// - Complexity: O(M x K x D x (log G + w)) for the moves (w: groups within time but short of
    ///   room), plus one packing per changed micro-batch.
    static func fillSlack(_ schedule: Schedule, packer: GroupPacker, lengths: [Int]) async -> Schedule {
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
            // Groups by degree and time, so each candidate finds its group by binary search.
            var degreeList = packer.degrees
            for g in groups where !degreeList.contains(g.degree) { degreeList.append(g.degree) }
            let degreeIndex = Dictionary(uniqueKeysWithValues: degreeList.enumerated().map { ($1, $0) })
            var open = OpenGroupIndex(degrees: degreeList, capacities: degreeList.map { model.tokenCapacity(degree: $0) },
                                      shortest: pool.map { lengths[$0] }.min()!)
            for g in groups.indices {
                open.file(group: g, degreeIndex: degreeIndex[groups[g].degree]!, time: times[g], tokens: tokens[g])
            }
            var took: [Int] = []
            for i in pool {
                // Into the group with the least idle time that holds it (ties: the first); else
                // a new group on idle GPUs.
                var best: Int?, bestSlack = Double.infinity
                for (k, d) in degreeList.enumerated() where lengths[i] <= open.capacities[k] {
                    let t = model.sequenceTime(length: lengths[i], degree: d)
                    var found: Int?
                    open.walk(degreeIndex: k, upTo: limit - t, length: lengths[i], tokens: { tokens[$0] }) { g in
                        let slack = limit - times[g] - t
                        guard slack >= 0 else { return false }
                        if let f = found {
                            guard times[g] == times[f] else { return true }
                            if g < f { found = g }
                        } else {
                            found = g
                        }
                        return false
                    }
                    guard let g = found else { continue }
                    let slack = limit - times[g] - t
                    if slack < bestSlack || (slack == bestSlack && g < best!) { best = g; bestSlack = slack }
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
                } else if let g = best {
                    open.remove(group: g, degreeIndex: degreeIndex[groups[g].degree]!, time: times[g])
                }
                guard let g = best else { continue }
                groups[g].members.append(i)
                times[g] += model.sequenceTime(length: lengths[i], degree: groups[g].degree)
                tokens[g] += lengths[i]
                open.file(group: g, degreeIndex: degreeIndex[groups[g].degree]!, time: times[g], tokens: tokens[g])
                took.append(i)
            }
            guard !took.isEmpty else { continue }
            let leaving = Set(took)
            for from in Set(took.map { home[$0] }) {
                for g in plan[from].indices { plan[from][g].members.removeAll { leaving.contains($0) } }
                plan[from].removeAll { $0.members.isEmpty }
                changed.insert(from)
            }
            for i in took {
                home[i] = a
                moved[i] = true
            }
            plan[a] = groups
        }
        guard !changed.isEmpty else { return schedule }
        // Repack what lost sequences (side by side), keeping each one's remaining groups if
        // they are better.
        let repack = changed.sorted().filter { !plan[$0].isEmpty }
        let before = plan
        let repacked = await Parallel.map(repack.count) { r -> [GroupPacker.Group]? in
            let groups = before[repack[r]]
            let members = groups.flatMap(\.members).sorted()
            var local: [Int: Int] = [:]
            for (position, i) in members.enumerated() { local[i] = position }
            let seed = GroupPacker.Packing(
                groups: groups.map { GroupPacker.Group(degree: $0.degree, members: $0.members.map { local[$0]! }) },
                makespan: .infinity)
            guard let packing = await packer.pack(lengths: members.map { lengths[$0] }, thorough: true, seed: seed) else { return nil }
            return packing.groups.map { GroupPacker.Group(degree: $0.degree, members: $0.members.map { members[$0] }) }
        }
        for (r, m) in repack.enumerated() { if let groups = repacked[r] { plan[m] = groups } }
        plan.removeAll { $0.isEmpty }
        let filled = Schedule(plan)
        return filled.stepTime(model: model, length: length) < schedule.stepTime(model: model, length: length) - 1e-9 ? filled : schedule
    }
}
