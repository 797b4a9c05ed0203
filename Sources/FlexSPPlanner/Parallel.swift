import Foundation

/// Independent pieces of planning work run side by side with structured concurrency, their
/// results in the order of their indices: so a plan never depends on how many cores ran it or in
/// which order the pieces finished.
///
/// One budget of threads is shared by every `map` of a plan, nested ones included (candidates,
/// the blocks of each candidate's micro-batches, the bound beside the solve): a `map` runs its
/// pieces on the calling task and starts a helper task whenever a thread of the budget is free,
/// so an outer `map` with fewer pieces than threads leaves the rest to the maps inside it, and
/// never more than `threads` pieces run at once.
///
///     let packings = await Parallel.withThreads(4) {
///         await Parallel.map(candidates.count) { c in pack(candidates[c]) }
///     }
enum Parallel {
    /// All the cores this process may use: the default of `--threads`.
    static var allCores: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// The threads a plan may still start beside those running (the calling task holds one).
    final class Budget: @unchecked Sendable {
        /// The most pieces running at once.
        let threads: Int
        private var spare: Int
        private let lock = NSLock()

        init(threads: Int) {
            self.threads = max(1, threads)
            spare = self.threads - 1
        }

        /// Takes a free thread; false when all are running.
        func take() -> Bool {
            lock.withLock {
                guard spare > 0 else { return false }
                spare -= 1
                return true
            }
        }

        func give() { lock.withLock { spare += 1 } }
    }

    /// The budget of the plan this task works for; nil: everything runs on the calling task.
    @TaskLocal static var budget: Budget?

    /// Runs `body` with a budget of `threads` for the maps inside it; under an enclosing budget
    /// (a solver called by another) that one stays, so nesting never adds threads. `body`'s
    /// typed error passes through (the task-local scope itself only rethrows untyped errors).
    static func withThreads<T: Sendable, E: Error>(_ threads: Int, _ body: () async throws(E) -> T) async throws(E) -> T {
        if budget != nil { return try await body() }
        let result = await $budget.withValue(Budget(threads: threads)) { () async -> Result<T, E> in
            do throws(E) { return .success(try await body()) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// `body(0) ... body(count - 1)`: on the calling task, plus a helper task for each thread of
    /// the budget that is free when a piece starts (none for one piece, or without a budget of
    /// two threads or more: a task group costs more than a small map's pieces).
    ///
    /// - Complexity: `count` calls of `body`, plus a lock operation per piece.
    static func map<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) async -> T) async -> [T] {
        guard count > 1, let budget, budget.threads > 1 else {
            var results: [T] = []
            for i in 0 ..< count { results.append(await body(i)) }
            return results
        }
        let results = Slots<T>(count: count)
        let next = Counter()
        await withTaskGroup(of: Void.self) { group in
            while let i = next.take(below: count) {
                if next.left(below: count) > 0, budget.take() {
                    group.addTask {
                        while let j = next.take(below: count) { results[j] = await body(j) }
                        budget.give()
                    }
                }
                results[i] = await body(i)
            }
        }
        return results.values.map { $0! }
    }

    /// The next piece to start, shared by the tasks of one `map`.
    private final class Counter: @unchecked Sendable {
        private var value = 0
        private let lock = NSLock()

        func take(below count: Int) -> Int? {
            lock.withLock {
                guard value < count else { return nil }
                value += 1
                return value - 1
            }
        }

        func left(below count: Int) -> Int { lock.withLock { count - value } }
    }
}

/// Result slots that parallel pieces fill, one slot each.
final class Slots<Value>: @unchecked Sendable {
    private var storage: [Value?]
    private let lock = NSLock()

    init(count: Int) { storage = Array(repeating: nil, count: count) }

    subscript(index: Int) -> Value? {
        get { lock.withLock { storage[index] } }
        set { lock.withLock { storage[index] = newValue } }
    }

    var values: [Value?] { lock.withLock { storage } }
}
