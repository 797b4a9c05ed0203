/// Which lower bound a plan states (`LowerBound`): both are valid for every plan.
public enum BoundMode: String, CaseIterable, Sendable {
    /// The closed-form bound: microseconds per batch.
    case quick
    /// The linear-programming relaxation of `ThoroughBound`, never below `quick`: tens to
    /// hundreds of milliseconds per batch.
    case thorough
}
