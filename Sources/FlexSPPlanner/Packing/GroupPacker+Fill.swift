import FlexSPCore

/// The memory fill: packings that fill groups of one base degree.
extension GroupPacker {
    /// One memory-filling pass at base degree `degrees[base]`: sequences longest first, each
    /// into a group of the base degree (or of its own smallest degree, if larger): the
    /// least-loaded one with room (opening a new group while GPUs are free), or with `tight`
    /// the one left with the fewest free tokens (opening only when none has room).
    func fill(lengths: [Int], times: TimeTable, base: Int, tight: Bool) -> Packing? {
        var groups: [OpenGroup] = []
        var freeGPUs = model.worldSize
        let beta1 = model.beta1
        for (i, length) in lengths.enumerated() {
            guard let k = (base ..< degrees.count).first(where: { length <= capacities[$0] }) else { return nil }
            let t = times[i, k]
            let canOpen = freeGPUs >= degrees[k]
            var chosen: Int?, chosenScore = Double.infinity
            // Spreading, a new group (at beta1 + t) always beats joining one: skip the scan.
            let scan = tight || !canOpen
            for (g, group) in groups.enumerated() where scan && group.degreeIndex == k && group.tokens + length <= capacities[k] {
                let score = tight ? Double(capacities[k] - group.tokens - length) : group.time + t
                if score < chosenScore { chosen = g; chosenScore = score }
            }
            if canOpen && (chosen == nil || (!tight && beta1 + t < chosenScore)) {
                groups.append(OpenGroup(degreeIndex: k, time: beta1 + t, tokens: length, members: [i]))
                freeGPUs -= degrees[k]
            } else if let g = chosen {
                groups[g].time += t
                groups[g].tokens += length
                groups[g].members.append(i)
            } else {
                return nil
            }
        }
        return finished(groups)
    }
}
