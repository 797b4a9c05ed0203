import Foundation

/// Independent pieces of planning work run side by side with structured concurrency, at most
/// `threads` at a time, their results in the order of their indices: so a plan never depends
/// on how many cores ran it or in which order the pieces finished.
///
///     let packings = await Parallel.map(candidates.count, threads: 4) { c in pack(candidates[c]) }
enum Parallel {
    /// All the cores this process may use: the default of `--threads`.
    static var allCores: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// `body(0) ... body(count - 1)`, at most `threads` of them running at once (on the calling
    /// task, one after another, when `threads` is 1).
    ///
    /// - Complexity: `count` calls of `body`, plus one child task each when `threads > 1`.
    static func map<T: Sendable>(_ count: Int, threads: Int, _ body: @escaping @Sendable (Int) async -> T) async -> [T] {
        guard threads > 1, count > 1 else {
            var results: [T] = []
            for i in 0 ..< count { results.append(await body(i)) }
            return results
        }
        return await withTaskGroup(of: (Int, T).self) { group in
            var results = [T?](repeating: nil, count: count)
            var next = 0
            while next < min(threads, count) {
                let i = next
                group.addTask { (i, await body(i)) }
                next += 1
            }
            while let (i, value) = await group.next() {
                results[i] = value
                if next < count {
                    let j = next
                    group.addTask { (j, await body(j)) }
                    next += 1
                }
            }
            return results.map { $0! }
        }
    }
}
