import ArgumentParser
import FlexSPCore
import FlexSPPlanner
import Foundation

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Plan batches for a running training job: JSON lines on stdin, plans on stdout.",
        discussion: """
            Each request is one line: {"id": 7, "lengths": [1234, 80, ...]}, optionally with \
            "strategy" (default: --strategy) and "cost_model" (a cost-model document; default: \
            the flags). Sequences get ids 0, 1, ... in request order and are planned as given \
            (no padding, no dropping). The reply is one line: the plan document with the same \
            "id", or {"id": 7, "error": "..."} for a bad request, after which the service goes \
            on. It stops at the end of its input. A request may hold at most 65536 \
            lengths of at most 2^40 tokens each, in a line of at most 16 MiB; larger ones get \
            an error reply (docs/CONTRACT.md).
            """
    )

    @OptionGroup var costModel: CostModelOptions

    @OptionGroup var planner: PlannerOptions

    @Option(help: "Default strategy for requests that name none.")
    var strategy: Strategy = .flexsp

    func run() async throws {
        let service = PlanService(
            costModel: try costModel.resolve(), strategy: strategy, planner: planner.planner())
        var lines = RequestLines(limit: Limits.maxDocumentBytes)
        while let line = lines.next() {
            let reply: Data
            switch line {
            case .request(let bytes):
                if bytes.allSatisfy({ [0x20, 0x09, 0x0D].contains($0) }) { continue }
                reply = await service.respond(to: bytes)
            case .tooLong(let count):
                reply = Data(#"{"id":null,"error":"request line has \#(count) bytes, more than the limit of \#(Limits.maxDocumentBytes)"}"#.utf8)
            }
            FileHandle.standardOutput.write(reply + Data("\n".utf8))
        }
    }
}

/// Standard input cut into lines of at most `limit` bytes: a longer line is read to its end
/// and discarded, and reported by its length, so one huge request cannot exhaust memory.
/// Each byte is scanned once, however the input is chunked.
struct RequestLines {
    enum Line {
        case request(Data)
        case tooLong(Int)
    }

    let limit: Int
    private var buffer: [UInt8] = []
    private var start = 0  // where the current line begins in `buffer`
    private var scanned = 0  // bytes of `buffer` already searched for a newline
    private var discarded = 0  // bytes of the current line thrown away (it was too long)
    private var atEnd = false

    init(limit: Int) { self.limit = limit }

    mutating func next() -> Line? {
        while true {
            if let newline = buffer[scanned...].firstIndex(of: 0x0A) {
                let line = buffer[start ..< newline]
                start = newline + 1
                scanned = start
                if discarded > 0 {
                    defer { discarded = 0 }
                    return .tooLong(discarded + line.count)
                }
                return .request(Data(line))
            }
            scanned = buffer.count
            if buffer.count - start > limit {
                discarded += buffer.count - start
                buffer.removeAll(keepingCapacity: true)
                start = 0
                scanned = 0
            }
            if atEnd {
                let rest = buffer.count - start
                defer {
                    buffer = []
                    start = 0
                    scanned = 0
                    discarded = 0
                }
                if discarded > 0 { return .tooLong(discarded + rest) }
                return rest > 0 ? .request(Data(buffer[start...])) : nil
            }
            if start > 0 {
                buffer.removeFirst(start)
                scanned -= start
                start = 0
            }
            let chunk = FileHandle.standardInput.availableData
            if chunk.isEmpty { atEnd = true } else { buffer.append(contentsOf: chunk) }
        }
    }
}
