import FlexSPCore

/// The thorough lower bound: a linear relaxation of the whole step with the micro-batch count
/// fixed and enumerated, never below the quick bound (`LowerBound`).
///
///     let bound = ThoroughBound(batch).stepTime()
///
/// **The relaxation.** Fix the number of micro-batches `M` and let `mb1` be the micro-batch
/// holding the longest sequence `L`, at degree `dL`, with makespan `beta1 + T1`; the other
/// `M - 1` micro-batches have makespans `beta1 + T_j`. Every other sequence is a divisible
/// fluid, grouped by length (class `k`: `n_k` sequences of length `s_k`). `cap_d` is what a
/// group of degree `d` can hold of this batch (`GroupCapacity`).
/// - In `mb1`, groups of degree `d` form a pool of `g_d` GPUs (`sum g_d <= N`, `g_dL >= dL`).
///   Summing each group's memory and time limits over the pool's `g_d / d` groups: tokens
///   `<= cap_d g_d / d` and GPU-time `sum_k d time(s_k, d) x_kd <= T1 g_d` (each group runs at
///   most `T1` beyond `beta1`), with `L` counted in pool `dL`. A sequence never takes longer
///   than its group, so class `k` may use pool `d` only if `time(s_k, d) <= T1`.
/// - In the other micro-batches, `r_kd` sequences of class `k` run at degree `d`. Each fills
///   `s_k d / cap_d` GPUs' worth of memory (their groups of degree `d` hold at most `cap_d`
///   each), so these add to at most `(M - 1) N`; as in the quick bound, `N sum_j T_j` is at
///   least their GPU-time `sum r_kd d time(s_k, d)`; and a sequence there makes its
///   micro-batch last at least its time, so `sum_j T_j >= sum_d time(s_k, d) r_kd / n_k` (a
///   weighted mean of times that occur, at most the largest).
///
/// Every plan with `M` micro-batches gives a feasible point (its counts `x_kd`, `r_kd` and pool
/// sizes), so for its `T1` the step is at least `M beta1 + T1 + (M - 1) Tr*(T1)`, where `Tr*`
/// is the LP's least mean `T_j`. Relaxing `T1` upward only loosens the LP, so `Tr*` does not
/// grow with `T1`: over a cell `[a, b]` of `T1` the step is at least `M beta1 + a + (M - 1)
/// Tr*(b)`. The bound for `M` is the least such value over cells covering `[time(L, dL), inf)`
/// and over `dL`, refined where it matters; a cell whose LP CLP cannot settle counts as
/// `M beta1 + a` (`Tr* >= 0`). For each `M` the bound is the larger of this and `quick(M)`;
/// the step bound is the least over `M >= M_min`, stopping once `quick(M)`, which grows with
/// `M`, reaches it (the beta1 argument). Against the solver's tolerances, every capacity of the
/// LP is loosened by a relative 1e-7 (so that a plan exactly at a limit stays strictly inside
/// and CLP cannot call its cell infeasible) and LP values are shaded by a relative 1e-6. More
/// than 4,096 distinct lengths fall back to the quick bound rather than grow the LP.
///
/// - Complexity: one LP of about `K D` columns and `K + 2D` rows per evaluated `T1`; a few
///   dozen evaluations per pair `(M, dL)`.
public struct ThoroughBound {
    public let batch: Batch
    /// LP evaluations allowed per pair `(M, dL)`.
    public var evaluationsPerDegree = 28
    /// Refinement stops once the bound is within this fraction of the best relaxed value.
    public var tolerance = 2e-4

    private let model: CostModel
    private let capacity: Double
    fileprivate let groupCapacity: [Int]
    fileprivate let classes: [(length: Int, count: Int)]
    fileprivate let longest: Int
    /// `W`: the least GPU-time of all sequences.
    private let work: Double
    /// `LowerBound.busy(batch)`: the quick bound less its `M beta1`.
    private let busy: Double

    public init(_ batch: Batch) {
        self.batch = batch
        model = batch.costModel
        let capacities = GroupCapacity(batch)
        capacity = capacities.microBatch
        groupCapacity = capacities.group
        longest = batch.lengths[0]
        work = batch.lengths.reduce(0.0) { $0 + batch.costModel.minimumWork(length: $1)! }
        var classes: [(length: Int, count: Int)] = []
        for length in batch.lengths.dropFirst() {  // longest first, so equal lengths are adjacent
            if classes.last?.length == length { classes[classes.count - 1].count += 1 } else { classes.append((length, 1)) }
        }
        self.classes = classes
        busy = LowerBound.busy(batch)
    }

    /// `LowerBound.quick(batch, microBatches: m)`, its batch-wide part computed once.
    private func quick(_ m: Int) -> Double { Double(m) * model.beta1 + busy }

    /// The bound on the optimal step time (ms).
    public func stepTime() -> Double {
        guard classes.count <= 4096 else { return LowerBound.stepTime(batch, mode: .quick) }
        let first = LowerBound.minimumMicroBatches(batch, capacity: capacity)
        var result = Double.infinity
        var m = first
        while m < first + 64 {
            let floor = quick(m)
            if floor >= result { return result }
            result = min(result, max(floor, relaxed(microBatches: m, stopAbove: result)))
            m += 1
        }
        // Every larger count is bounded by quick(M), which grows with M.
        return min(result, quick(m))
    }

    /// The relaxation's bound on plans of exactly `m` micro-batches. Refines no further once it
    /// is certainly at least `stopAbove`.
    func relaxed(microBatches m: Int, stopAbove: Double) -> Double {
        let fixed = Double(m) * model.beta1
        var upper = stopAbove  // the least relaxed step value found: an upper end for the search
        var bound = Double.infinity
        // Per degree of L, the quick argument's floor: `max(time(L, d), (W - least(L) + d
        // time(L, d)) / N)`. Searching the most promising degrees first lowers `upper` early,
        // and a degree whose floor is already above it needs no LP.
        let n = Double(model.worldSize)
        let others = work - model.minimumWork(length: longest)!
        let floors = model.degrees.filter { model.fits(tokens: longest, degree: $0) }.map { d in
            let start = model.sequenceTime(length: longest, degree: d)
            return (degree: d, start: start, floor: fixed + max(start, (others + Double(d) * start) / n))
        }.sorted { $0.floor < $1.floor }
        for entry in floors {
            if entry.floor >= min(upper, bound) { bound = min(bound, entry.floor); continue }
            let program = Program(bound: self, microBatches: m, longestDegree: entry.degree)
            let searched = fixed + program.search(from: entry.start, fixed: fixed, upper: &upper)
            bound = min(bound, max(entry.floor, searched))
        }
        return bound
    }
}

/// `1 + 1e-7`: the loosening of the LP's capacities (see `ThoroughBound`).
private let loose = 1 + 1e-7

/// The LP of `ThoroughBound` for one `(M, dL)`, re-solved for each `T1`.
private final class Program {
    let m: Int
    let lp: LinearProgram
    let model: CostModel
    /// Columns `x_kd` with their time `time(s_k, d)` and count, to open once `T1` allows them.
    var gated: [(column: Int, time: Double, count: Double)] = []
    /// `(row, column)` of the `-T1 g_d` entries.
    var timeEntries: [(row: Int, column: Int)] = []
    let tolerance: Double
    let evaluations: Int

    init(bound: ThoroughBound, microBatches m: Int, longestDegree dL: Int) {
        self.m = m
        model = bound.batch.costModel
        tolerance = bound.tolerance
        evaluations = bound.evaluationsPerDegree
        let classes = bound.classes
        let degrees = model.degrees
        let n = Double(model.worldSize)
        let rest = Double(m - 1)
        let k = classes.count
        // Rows: cover_k (k), mem_d, time_d (2 D), gpus, restMem, restWork, restTime_k (k).
        let memRow = { (i: Int) in k + 2 * i }
        let timeRow = { (i: Int) in k + 2 * i + 1 }
        let gpuRow = k + 2 * degrees.count
        let restMemRow = gpuRow + 1
        let restWorkRow = gpuRow + 2
        let restTimeRow = { (c: Int) in gpuRow + 3 + c }
        let rowCount = gpuRow + 3 + k
        var rowLower = [Double](repeating: -.infinity, count: rowCount)
        var rowUpper = [Double](repeating: 0, count: rowCount)
        let longest = Double(bound.longest)
        for (c, cls) in classes.enumerated() {
            rowLower[c] = Double(cls.count)
            rowUpper[c] = Double(cls.count)
        }
        for (i, d) in degrees.enumerated() where d == dL {
            rowUpper[memRow(i)] = -longest
            rowUpper[timeRow(i)] = -model.sequenceWork(length: bound.longest, degree: d)
        }
        rowUpper[gpuRow] = n * loose
        rowUpper[restMemRow] = rest * n * loose
        var columns: [[(row: Int, coefficient: Double)]] = []
        var lower: [Double] = [], upper: [Double] = [], objective: [Double] = []
        func add(_ entries: [(row: Int, coefficient: Double)], _ lo: Double, _ hi: Double, _ cost: Double = 0) -> Int {
            columns.append(entries); lower.append(lo); upper.append(hi); objective.append(cost)
            return columns.count - 1
        }
        for (c, cls) in classes.enumerated() {
            let count = Double(cls.count)
            let s = Double(cls.length)
            for (i, d) in degrees.enumerated() where model.fits(tokens: cls.length, degree: d) {
                let column = add([(c, 1), (memRow(i), s), (timeRow(i), model.sequenceWork(length: cls.length, degree: d))], 0, 0)
                gated.append((column, model.sequenceTime(length: cls.length, degree: d), count))
            }
            for (i, d) in degrees.enumerated() where model.fits(tokens: cls.length, degree: d) {
                let gpus = s * Double(d) / (Double(bound.groupCapacity[i]) * loose)  // GPUs' worth of memory
                _ = add([(c, 1), (restMemRow, gpus), (restWorkRow, model.sequenceWork(length: cls.length, degree: d)),
                         (restTimeRow(c), model.sequenceTime(length: cls.length, degree: d) / count)], 0, m > 1 ? count : 0)
            }
        }
        for (i, d) in degrees.enumerated() {
            let column = add([(memRow(i), -Double(bound.groupCapacity[i]) * loose / Double(d)), (timeRow(i), -1), (gpuRow, 1)],
                             d == dL ? Double(d) / loose : 0, n)
            timeEntries.append((timeRow(i), column))
        }
        var meanRest: [(row: Int, coefficient: Double)] = [(restWorkRow, -rest * n)]
        for c in 0 ..< k { meanRest.append((restTimeRow(c), -rest)) }
        _ = add(meanRest, 0, .infinity, 1)
        lp = LinearProgram(rowLower: rowLower, rowUpper: rowUpper, columnLower: lower, columnUpper: upper,
                           objective: objective, columns: columns)
    }

    /// A lower estimate of `Tr*(T1)` (shaded against solver tolerances) and whether the
    /// relaxation attains it; nil when the LP is proven infeasible. When CLP settles nothing
    /// the estimate is 0 (`Tr* >= 0` always holds), not attained.
    func restTime(_ t1: Double) -> (value: Double, attained: Bool)? {
        for entry in timeEntries { lp.setCoefficient(row: entry.row, column: entry.column, -t1 * loose) }
        for gate in gated { lp.setColumnUpper(gate.column, gate.time <= t1 * loose ? gate.count : 0) }
        switch lp.solve() {
        case .optimal(let value): return (max(0, value * (1 - 1e-6) - 1e-9), true)
        case .infeasible: return nil
        case .unknown: return (0, false)
        }
    }

    /// A lower bound on `T1 + (M - 1) Tr*(T1)` over `T1 >= start`. `upper` (a step value,
    /// `fixed` included, that the final bound cannot exceed) is shared across calls, lowered by
    /// the values the relaxation attains, and stops refinement where it cannot matter.
    func search(from start: Double, fixed: Double, upper: inout Double) -> Double {
        let rest = Double(m - 1)
        // A cell [a, b] with the LP solved at b bounds every T1 in it by a + rest Tr*(b).
        struct Cell { var a: Double; var b: Double; var low: Double }
        var used = 0
        func evaluate(_ a: Double, _ b: Double) -> Cell {
            used += 1
            guard let r = restTime(b) else { return Cell(a: a, b: b, low: .infinity) }
            if r.attained { upper = min(upper, fixed + b + rest * r.value) }
            return Cell(a: a, b: b, low: a + rest * r.value)
        }
        // The point start, then cells of doubling width until T1 alone reaches the best step
        // found; beyond the last, T1 >= its end.
        var cells = [evaluate(start, start)]
        var end = start
        var width = max(start, 1e-6)
        while fixed + end < upper, end < 1e15 {
            cells.append(evaluate(end, end + width))
            end += width
            width *= 2
        }
        while used < evaluations {
            let threshold = upper - fixed - tolerance * upper
            guard let index = cells.indices.min(by: { cells[$0].low < cells[$1].low }),
                  cells[index].low < threshold, cells[index].b - cells[index].a > 1e-9 * max(1, cells[index].b)
            else { break }
            let cell = cells.remove(at: index)
            let mid = (cell.a + cell.b) / 2
            cells.append(evaluate(cell.a, mid))
            cells.append(Cell(a: mid, b: cell.b, low: cell.low - cell.a + mid))
        }
        return cells.reduce(end) { min($0, $1.low) }
    }
}
