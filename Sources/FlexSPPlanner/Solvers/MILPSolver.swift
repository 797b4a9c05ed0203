import FlexSPCore

/// The paper's exact reference (docs/PAPER.md sections 2-3): for each micro-batch count `M` in
/// `[M_min, M_min + 4]`, the Blaster's token-balanced chunks, each bucketed into `Q` buckets
/// and solved as a MILP by COIN-OR CBC within a time limit, warm-started with the best
/// homogeneous (single-degree) solution.
///
/// The MILP for one micro-batch, with buckets `b` (count `n_b`, upper bound `u_b`) and virtual
/// groups `p` (degree `d_p`; `N / d` copies of each degree):
///
///     minimise C
///     beta1 m_p + sum_b x_bp time(u_b, d_p) <= C            (every group)
///     sum_b x_bp u_b <= capacity(d_p) m_p                   (memory; x = 0 when unused)
///     sum_p d_p m_p <= N                                    (GPUs)
///     sum_p x_bp = n_b                                      (every sequence placed)
///     m_p >= m_p'  for consecutive copies of one degree     (symmetry)
///
/// with `m_p` binary and `x_bp` integer. Real sequences then fill their bucket's counts.
public struct MILPSolver: Sendable {
    /// Wall-clock budget for one batch, shared by its MILP solves.
    public var timeLimitSeconds: Double
    /// Buckets per micro-batch (`Q`); at least the batch's size makes the MILP exact.
    public var bucketCount: Int

    public init(timeLimitSeconds: Double = 10, bucketCount: Int = Bucketing.defaultCount) {
        self.timeLimitSeconds = timeLimitSeconds
        self.bucketCount = bucketCount
    }

    /// Plans the batch: the best of the micro-batch counts solved within the time limit.
    ///
    /// - Throws: `.infeasible` when no micro-batch count gave a solution in time.
    public func solve(_ batch: Batch) async throws(PlanningError) -> Solution {
        let model = batch.costModel
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(Int(timeLimitSeconds * 1000))
        let minimum = Blaster.minimumMicroBatches(totalTokens: batch.totalTokens, costModel: model)
        let counts = Array(min(minimum, batch.count) ... min(minimum + Blaster.extraMicroBatches, batch.count))
        let plannedSolves = counts.reduce(0, +)
        var solvesDone = 0
        var best: Solution?
        for m in counts {
            // Past the budget, keep what was found rather than start another micro-batch count.
            if best != nil && clock.now >= deadline { break }
            var microBatches: [[Schedule.Group]] = []
            var feasible = true
            for chunk in Blaster.chunks(lengths: batch.lengths, count: m) {
                let left = (deadline - clock.now).seconds
                let share = max(0.05, left / Double(max(1, plannedSolves - solvesDone)))
                solvesDone += 1
                let lengths = chunk.map { batch.lengths[$0] }
                // Members are batch indices, as `Solution(batch:schedule:)` takes them.
                guard let groups = await solveMicroBatch(ids: Array(chunk), lengths: lengths, model: model, seconds: share)?.groups else {
                    feasible = false
                    break
                }
                microBatches.append(groups)
            }
            let solution = Solution(batch: batch, schedule: Schedule(microBatches))
            if feasible, solution.stepTime < best?.stepTime ?? .infinity {
                best = solution
            }
        }
        guard let best else {
            throw .infeasible(strategy: "milp", reason: "no micro-batch count in \(counts.first!)...\(counts.last!) gave a solution within the time limit")
        }
        return best
    }

    /// Solves one micro-batch (ids and lengths sorted longest first); nil if no solution.
    /// The groups' members are the given ids; `makespan` is their slowest group's time;
    /// `proven`: CBC proved the bucketed MILP's optimum (exact when every length has its own
    /// bucket).
    func solveMicroBatch(ids: [Int], lengths: [Int], model: CostModel, seconds: Double) async
        -> (groups: [Schedule.Group], makespan: Double, proven: Bool)?
    {
        let ascending = Array(lengths.reversed())
        let buckets = Bucketing.buckets(lengths: ascending, count: bucketCount)
        let n = model.worldSize
        // Virtual groups: for each degree, as many copies as could run at once (or sequences).
        var groupDegree: [Int] = []
        for d in model.degrees { groupDegree += Array(repeating: d, count: min(n / d, lengths.count)) }

        let cbc = CbcModel()
        let makespan = cbc.addColumn(lower: 0, upper: 1e15, objective: 1, integer: false)
        let used = groupDegree.map { _ in cbc.addColumn(lower: 0, upper: 1, objective: 0, integer: true) }
        // x[b][p]: nil where bucket b's sequences do not fit a group of degree d_p.
        let x: [[Int?]] = buckets.map { bucket in
            groupDegree.map { d in
                model.fits(tokens: bucket.upperBound, degree: d)
                    ? cbc.addColumn(lower: 0, upper: Double(bucket.members.count), objective: 0, integer: true) : nil
            }
        }
        for (p, d) in groupDegree.enumerated() {
            var time: [(column: Int, coefficient: Double)] = [(used[p], model.beta1), (makespan, -1)]
            var memory: [(column: Int, coefficient: Double)] = [(used[p], -Double(model.tokenCapacity(degree: d)))]
            for (b, bucket) in buckets.enumerated() {
                guard let column = x[b][p] else { continue }
                time.append((column, model.sequenceTime(length: bucket.upperBound, degree: d)))
                memory.append((column, Double(bucket.upperBound)))
            }
            cbc.addRow(time, .lessOrEqual, 0)
            cbc.addRow(memory, .lessOrEqual, 0)
            if p > 0, groupDegree[p - 1] == d { cbc.addRow([(used[p - 1], 1), (used[p], -1)], .greaterOrEqual, 0) }
        }
        cbc.addRow(groupDegree.enumerated().map { (used[$0.offset], Double($0.element)) }, .lessOrEqual, Double(n))
        for (b, bucket) in buckets.enumerated() {
            let terms = x[b].compactMap { $0 }.map { (column: $0, coefficient: 1.0) }
            guard !terms.isEmpty else { return nil }
            cbc.addRow(terms, .equal, Double(bucket.members.count))
        }

        // Warm start: the best single-degree packing of the bucketed lengths.
        let bucketOf = buckets.enumerated().flatMap { b, bucket in bucket.members.map { _ in b } }
        let rounded = bucketOf.map { buckets[$0].upperBound }.reversed()
        var start: (makespan: Double, values: [Double])?
        for d in model.degrees {
            guard let packing = await GroupPacker(model: model, degrees: [d]).pack(lengths: Array(rounded)),
                  packing.makespan < start?.makespan ?? .infinity else { continue }
            var values = [Double](repeating: 0, count: cbc.columnCount)
            values[makespan] = packing.makespan
            let copies = groupDegree.indices.filter { groupDegree[$0] == d }
            for (copy, group) in zip(copies, packing.groups) {
                values[used[copy]] = 1
                for member in group.members {
                    // `rounded` is longest first: member i is ascending index count - 1 - i.
                    let b = bucketOf[ascending.count - 1 - member]
                    values[x[b][copy]!] += 1
                }
            }
            start = (packing.makespan, values)
        }
        if let start { cbc.setStart(start.values) }

        let outcome = cbc.solve(seconds: seconds)
        guard let values = outcome.values ?? start?.values else { return nil }
        // Deal each bucket's real sequences out to groups by the solution's counts.
        var members = [[Int]](repeating: [], count: groupDegree.count)
        for (b, bucket) in buckets.enumerated() {
            var next = bucket.members.lowerBound
            for p in groupDegree.indices {
                guard let column = x[b][p] else { continue }
                let count = Int(values[column].rounded())
                for _ in 0 ..< count where next < bucket.members.upperBound {
                    members[p].append(next)
                    next += 1
                }
            }
            // Counts that do not cover the bucket would lose sequences: reject the solution.
            guard next == bucket.members.upperBound else { return nil }
        }
        var result: [Schedule.Group] = []
        var gpus = 0
        for (p, d) in groupDegree.enumerated() where !members[p].isEmpty {
            guard model.fits(tokens: members[p].reduce(0) { $0 + ascending[$1] }, degree: d) else { return nil }
            gpus += d
            // Members as positions in `ascending`, then as the caller's ids.
            result.append(Schedule.Group(degree: d, members: members[p].map { ids[ids.count - 1 - $0] }))
        }
        let lengthOf = Dictionary(zip(ids, lengths), uniquingKeysWith: { first, _ in first })
        let slowest = Schedule.makespan(of: result, model: model) { lengthOf[$0] }
        return gpus <= n ? (result, slowest, outcome.provenOptimal && outcome.values != nil) : nil
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}
