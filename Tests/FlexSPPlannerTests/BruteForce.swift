import FlexSPCore

/// Exact optima by exhaustive search, for tiny instances only: the references the fast
/// algorithms are tested against.
enum BruteForce {
    /// The least step time of any valid plan for these lengths (K <= 10): subset DP over
    /// micro-batches, each the best partition of its sequences into groups whose degrees fit
    /// the world.
    static func optimalStep(lengths: [Int], model: CostModel) -> Double {
        let k = lengths.count
        let full = (1 << k) - 1
        let n = model.worldSize
        let degrees = model.degrees
        // groupTime[mask][di]
        var groupTime = [[Double]](repeating: [Double](repeating: .infinity, count: degrees.count), count: full + 1)
        for mask in 1 ... full {
            let members = (0 ..< k).filter { mask & (1 << $0) != 0 }.map { lengths[$0] }
            for (di, d) in degrees.enumerated() where model.fits(tokens: members.reduce(0, +), degree: d) {
                groupTime[mask][di] = model.groupTime(lengths: members, degree: d)
            }
        }
        // makespan[mask][g]: least makespan of one micro-batch holding mask with at most g GPUs.
        var makespan = [[Double]](repeating: [Double](repeating: .infinity, count: n + 1), count: full + 1)
        for g in 0 ... n { makespan[0][g] = 0 }
        for mask in 1 ... full {
            let low = mask & -mask
            for g in 1 ... n {
                var best = Double.infinity
                var sub = mask
                while sub > 0 {
                    if sub & low != 0 {
                        for (di, d) in degrees.enumerated() where d <= g && groupTime[sub][di].isFinite {
                            let rest = makespan[mask ^ sub][g - d]
                            best = min(best, max(groupTime[sub][di], rest))
                        }
                    }
                    sub = (sub - 1) & mask
                }
                makespan[mask][g] = best
            }
        }
        var step = [Double](repeating: .infinity, count: full + 1)
        step[0] = 0
        for mask in 1 ... full {
            let low = mask & -mask
            var sub = mask
            while sub > 0 {
                if sub & low != 0 { step[mask] = min(step[mask], makespan[sub][n] + step[mask ^ sub]) }
                sub = (sub - 1) & mask
            }
        }
        return step[full]
    }

    /// Every way to cut `count` into `parts` non-empty consecutive runs, as run lengths.
    static func compositions(_ count: Int, into parts: Int) -> [[Int]] {
        if parts == 1 { return count >= 1 ? [[count]] : [] }
        guard count >= parts else { return [] }
        return (1 ... count - parts + 1).flatMap { first in
            compositions(count - first, into: parts - 1).map { [first] + $0 }
        }
    }
}

/// A small deterministic generator so tests are reproducible.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
