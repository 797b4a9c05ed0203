import FlexSPCore

/// The most tokens a group of each degree, and one micro-batch, can hold *of this batch*.
///
/// A group's tokens are a sum of the batch's lengths within `tokenCapacity(d)`, so at most the
/// largest such sum. Allowing each length any number of times (a superset of the sums a group
/// can reach) keeps that an upper bound and makes it one pass of a reachability table over
/// multiples of the lengths' greatest common divisor `g`. Padded lengths make this matter: at
/// 1,024 GPUs every length is a multiple of 2,048, so a GPU that fits 6,828 tokens holds at most
/// 6,144 of them. Where the table would be too large, `floor(tokenCapacity(d) / g) g` stands in.
///
///     let capacity = GroupCapacity(batch)
///     capacity.group[0]    // degree model.degrees[0]
///     capacity.microBatch  // bounds every micro-batch's tokens
struct GroupCapacity {
    /// Per degree, in the order of `CostModel.degrees`.
    let group: [Int]
    /// `max over d of floor(N / d) group(d)`: groups of degrees `d_i` with `sum d_i <= N` hold at
    /// most `sum d_i (group(d_i) / d_i) <= N rho` tokens, `rho` the best ratio, reached at some
    /// `d*`; the integer total is at most `floor(N group(d*) / d*)`. (Each group's capacity is
    /// rounded on its own, so small groups together may hold more than one group of `N`:
    /// issue 11, #13.) A `Double`, so no world size overflows.
    let microBatch: Double

    /// Table cells allowed (reachable sums x distinct lengths).
    static let tableBudget = 4_000_000

    init(_ batch: Batch) {
        let model = batch.costModel
        var unit = 0
        for length in batch.lengths { unit = gcd(unit, length) }
        var units: [Int] = []  // distinct lengths in units of g
        for length in batch.lengths where units.last != length / unit { units.append(length / unit) }
        let limits = model.degrees.map { model.tokenCapacity(degree: $0) / unit }
        let size = min(limits.max()!, Self.tableBudget / max(1, units.count))
        var reach = [Bool](repeating: false, count: size + 1)
        reach[0] = true
        for u in units where u <= size {
            for s in u ... size where !reach[s] && reach[s - u] { reach[s] = true }
        }
        // best[s]: the largest reachable sum <= s.
        var best = [Int](repeating: 0, count: size + 1)
        for s in 1 ..< best.count { best[s] = reach[s] ? s : best[s - 1] }
        group = limits.map { ($0 <= size ? best[$0] : $0) * unit }
        var most = 0.0
        for (d, capacity) in zip(model.degrees, group) {
            let (exact, overflow) = (model.worldSize / d).multipliedReportingOverflow(by: capacity)
            if model.worldSize % d == 0, !overflow {
                most = max(most, Double(exact))
            } else {
                // Rounding may put the quotient an ulp below an integer it equals; the factor
                // lifts it back before the floor (an overestimate keeps the bound valid).
                let quotient = Double(model.worldSize) * Double(capacity) / Double(d)
                most = max(most, (quotient * (1 + 1e-12)).rounded(.down))
            }
        }
        microBatch = most
    }
}

private func gcd(_ a: Int, _ b: Int) -> Int {
    var (a, b) = (a, b)
    while b != 0 { (a, b) = (b, a % b) }
    return a
}
