import CCbc

/// A mixed-integer program solved by COIN-OR CBC through its C API: a thin owner of one
/// `Cbc_Model`. Columns and rows are added one at a time; `solve` runs branch and cut.
final class CbcModel {
    enum Sense: CChar {
        case lessOrEqual = 76  // "L"
        case greaterOrEqual = 71  // "G"
        case equal = 69  // "E"
    }

    private let handle: UnsafeMutableRawPointer
    private(set) var columnCount = 0

    init() {
        handle = Cbc_newModel()
        Cbc_setLogLevel(handle, 0)
        // Time limits count wall-clock seconds, as a caller waiting on a plan experiences them.
        Cbc_setParameter(handle, "timeMode", "elapsed")
        // CBC 2.10's preprocessing dereferences null in CglPreProcess::postProcess when the time
        // limit strikes during a solve (seen with sub-second limits); without it CBC is safe.
        Cbc_setParameter(handle, "preprocess", "off")
    }

    deinit { Cbc_deleteModel(handle) }

    /// Adds a column and returns its index.
    func addColumn(lower: Double, upper: Double, objective: Double, integer: Bool) -> Int {
        let index = columnCount
        "c\(index)".withCString { name in
            Cbc_addCol(handle, name, lower, upper, objective, integer ? 1 : 0, 0, nil, nil)
        }
        columnCount += 1
        return index
    }

    /// Adds the row `sum of coefficient x column (sense) rhs`.
    func addRow(_ terms: [(column: Int, coefficient: Double)], _ sense: Sense, _ rhs: Double) {
        let columns = terms.map { Int32($0.column) }
        let coefficients = terms.map(\.coefficient)
        columns.withUnsafeBufferPointer { c in
            coefficients.withUnsafeBufferPointer { v in
                Cbc_addRow(handle, "", Int32(terms.count), c.baseAddress, v.baseAddress, sense.rawValue, rhs)
            }
        }
    }

    /// A feasible assignment of every column to start the search from.
    func setStart(_ values: [Double]) {
        precondition(values.count == columnCount)
        let indices = (0 ..< Int32(columnCount)).map { $0 }
        indices.withUnsafeBufferPointer { i in
            values.withUnsafeBufferPointer { v in
                Cbc_setMIPStartI(handle, Int32(columnCount), i.baseAddress, v.baseAddress)
            }
        }
    }

    struct Outcome {
        /// The best solution found, if any.
        var values: [Double]?
        var objective: Double
        /// The best bound CBC proved (a lower bound for minimisation).
        var bound: Double
        var provenOptimal: Bool
    }

    /// Minimises within a wall-clock limit.
    func solve(seconds: Double) -> Outcome {
        Cbc_setMaximumSeconds(handle, max(0.01, seconds))
        Cbc_solve(handle)
        let optimal = Cbc_isProvenOptimal(handle) != 0
        var values: [Double]?
        let best: UnsafePointer<Double>? = Cbc_bestSolution(handle).map { UnsafePointer($0) }
        if let pointer = best ?? (optimal ? Cbc_getColSolution(handle) : nil) {
            values = Array(UnsafeBufferPointer(start: pointer, count: columnCount))
        }
        return Outcome(values: values, objective: Cbc_getObjValue(handle),
                       bound: Cbc_getBestPossibleObjValue(handle), provenOptimal: optimal)
    }
}
