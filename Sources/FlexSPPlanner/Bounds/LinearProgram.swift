import CClp

/// A small linear program solved by COIN-OR CLP's dual simplex, built once and re-solved
/// (warm) after bound and coefficient changes. Minimises `objective . x` subject to row and
/// column bounds.
final class LinearProgram {
    private let handle: UnsafeMutableRawPointer
    /// Column upper bounds as last set, handed to CLP whole before each solve.
    private var columnUpper: [Double]

    /// Columns are given as sparse lists of `(row, coefficient)`.
    init(rowLower: [Double], rowUpper: [Double], columnLower: [Double], columnUpper: [Double],
         objective: [Double], columns: [[(row: Int, coefficient: Double)]]) {
        handle = Clp_newModel()!
        self.columnUpper = columnUpper
        Clp_setLogLevel(handle, 0)
        var starts: [CoinBigIndex] = [0]
        var rows: [Int32] = []
        var values: [Double] = []
        for column in columns {
            for entry in column {
                rows.append(Int32(entry.row))
                values.append(entry.coefficient)
            }
            starts.append(CoinBigIndex(rows.count))
        }
        Clp_loadProblem(handle, Int32(columns.count), Int32(rowLower.count), starts, rows, values,
                        columnLower, columnUpper, objective, rowLower, rowUpper)
    }

    deinit { Clp_deleteModel(handle) }

    func setCoefficient(row: Int, column: Int, _ value: Double) {
        Clp_modifyCoefficient(handle, Int32(row), Int32(column), value, false)
    }

    func setColumnUpper(_ column: Int, _ value: Double) {
        columnUpper[column] = value
    }

    /// What a solve proved.
    enum Outcome {
        case optimal(Double)
        case infeasible
        /// CLP stopped without proving either: a caller must assume nothing.
        case unknown
    }

    /// Re-solves from the last basis (dual simplex), falling back to a fresh solve.
    func solve() -> Outcome {
        Clp_chgColumnUpper(handle, columnUpper)
        _ = Clp_dual(handle, 0)
        if Clp_isProvenOptimal(handle) == 0, Clp_isProvenPrimalInfeasible(handle) == 0 {
            _ = Clp_initialSolve(handle)
        }
        if Clp_isProvenOptimal(handle) != 0 { return .optimal(Clp_objectiveValue(handle)) }
        if Clp_isProvenPrimalInfeasible(handle) != 0 { return .infeasible }
        return .unknown
    }
}
