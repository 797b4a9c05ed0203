import ArgumentParser
import FlexSPCore
import FlexSPPlanner
import Foundation

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Plan batches for a running training job: JSON lines on stdin, plans on stdout.",
        discussion: """
            Each request is one line: {"id": 7, "lengths": [1234, 80, ...]}, optionally with \
            "strategy" (default: --strategy) and "cost_model" (a cost-model document; default: \
            the flags). Sequences get ids 0, 1, ... in request order and are planned as given \
            (no padding, no dropping). The reply is one line: the plan document with the same \
            "id", or {"id": 7, "error": "..."} for a bad request, after which the service goes \
            on. It stops at the end of its input. A request may hold at most 8192 \
            lengths of at most 2^40 tokens each, in a line of at most 16 MiB; larger ones get \
            an error reply (docs/CONTRACT.md).
            """
    )

    @OptionGroup var costModel: CostModelOptions

    @Option(help: "Default strategy for requests that name none.")
    var strategy: String = "flexsp"

    @Option(name: .customLong("milp-time-limit"), help: "Seconds the milp strategy may spend per request.")
    var milpTimeLimit: Double = 10

    func validate() throws {
        _ = try Strategy(parsing: strategy)
        try checkMILPTimeLimit(milpTimeLimit)
    }

    func run() throws {
        let service = PlanService(
            costModel: try costModel.resolve(), strategy: try Strategy(parsing: strategy),
            planner: Planner(milpTimeLimitSeconds: milpTimeLimit, bound: costModel.bound))
        var lines = RequestLines(limit: Limits.maxDocumentBytes)
        while let line = lines.next() {
            let reply: Data
            switch line {
            case .request(let bytes):
                if bytes.allSatisfy({ [0x20, 0x09, 0x0D].contains($0) }) { continue }
                reply = service.respond(to: bytes)
            case .tooLong(let count):
                reply = Data(#"{"id":null,"error":"request line has more than \#(count) bytes, over the limit of \#(Limits.maxDocumentBytes)"}"#.utf8)
            }
            FileHandle.standardOutput.write(reply + Data("\n".utf8))
        }
    }
}

/// Standard input cut into lines of at most `limit` bytes: a longer line is read to its end
/// and discarded, and reported by its length, so one huge request cannot exhaust memory.
struct RequestLines {
    enum Line {
        case request(Data)
        case tooLong(Int)
    }

    let limit: Int
    private var buffer = Data()
    private var discarding = 0
    private var atEnd = false

    init(limit: Int) { self.limit = limit }

    mutating func next() -> Line? {
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = buffer[buffer.startIndex ..< newline]
                buffer = Data(buffer[(newline + 1)...])
                if discarding > 0 {
                    let total = discarding + line.count
                    discarding = 0
                    return .tooLong(total)
                }
                return .request(Data(line))
            }
            if buffer.count > limit {
                discarding += buffer.count
                buffer = Data()
            }
            if atEnd {
                if discarding > 0 {
                    defer { discarding = 0 }
                    return .tooLong(discarding + buffer.count)
                }
                guard !buffer.isEmpty else { return nil }
                defer { buffer = Data() }
                return .request(buffer)
            }
            let chunk = FileHandle.standardInput.availableData
            if chunk.isEmpty { atEnd = true } else { buffer.append(chunk) }
        }
    }
}
