/// Which lower bound a plan states (`LowerBound`): both are valid for every plan.
public enum BoundMode: String, CaseIterable, Sendable {
    /// The closed-form bound: well under a millisecond per batch.
    case quick
    /// The linear relaxation of `ThoroughBound`, never below `quick`: about 10-30 ms per batch
    /// of 512 on 64 GPUs (more on a loaded machine).
    case thorough
}
