import FlexSPCore
import Foundation

/// The plan service's protocol: answers one request line (a JSON object) with one reply line;
/// never throws, so one bad request cannot stop the service. `flexsp serve` runs it over
/// stdin and stdout.
///
///     service.respond(to: Data(#"{"id": 7, "lengths": [4096, 512]}"#.utf8))
///     // {"id":7,"cost_model":{...},"micro_batches":[...],...}
///     service.respond(to: Data("garbage".utf8))
///     // {"id":null,"error":"request is not valid JSON: ..."}
public struct PlanService: Sendable {
    public var costModel: CostModel
    public var strategy: Strategy
    public var planner: Planner

    public init(costModel: CostModel, strategy: Strategy, planner: Planner) {
        self.costModel = costModel
        self.strategy = strategy
        self.planner = planner
    }

    /// The reply to one request line: a plan document with the request's id, or an error.
    public func respond(to line: Data) async -> Data {
        guard line.count <= Limits.maxDocumentBytes else {
            return reply(id: nil, error: "request has \(line.count) bytes, more than the limit of \(Limits.maxDocumentBytes)")
        }
        do { try StrictJSON.check(line) } catch {
            return reply(id: nil, error: "request is not valid JSON: \(error)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: line, options: [.fragmentsAllowed]) else {
            return reply(id: nil, error: "request is not valid JSON")
        }
        guard let request = object as? [String: Any] else {
            return reply(id: nil, error: "request must be a JSON object like {\"id\": 1, \"lengths\": [...]}")
        }
        let id = request["id"]
        guard Self.isUsableID(id) else {
            return reply(id: nil, error: "\"id\" must be an integer, a string of at most 256 characters, or null")
        }
        do {
            let plan = try await plan(for: request)
            // The plan document with "id" spliced in as its first key.
            var data = Data("{\"id\":".utf8)
            data.append(encodeID(id))
            data.append(contentsOf: Array(",".utf8))
            data.append(plan.jsonData().dropFirst())
            return data
        } catch {
            return reply(id: id, error: "\(error)")
        }
    }

    /// The request fields the service reads; any other is refused, so a misspelt option
    /// cannot be silently ignored.
    public static let requestFields = ["id", "lengths", "strategy", "cost_model"]

    private static func isUsableID(_ id: Any?) -> Bool {
        guard let id, !(id is NSNull) else { return true }
        if let text = id as? String { return text.count <= 256 }
        guard let number = id as? NSNumber, type(of: id as AnyObject) != jsonBooleanClass else { return false }
        let value = number.doubleValue
        return value.isFinite && value == value.rounded() && abs(value) <= 9_007_199_254_740_992
    }

    private func plan(for request: [String: Any]) async throws -> Plan {
        if let unknown = request.keys.sorted().first(where: { !Self.requestFields.contains($0) }) {
            throw RequestError("unknown field \(unknown.quotedForMessage()); a request has \(Self.requestFields.map { "\"\($0)\"" }.joined(separator: ", "))")
        }
        guard let rawLengths = request["lengths"] else { throw RequestError("missing \"lengths\"") }
        guard let list = rawLengths as? [Any] else { throw RequestError("\"lengths\" must be a list of positive integers") }
        guard list.count <= Limits.maxSequences else { throw PlanningError.tooManySequences(list.count) }
        var lengths: [Int] = []
        lengths.reserveCapacity(list.count)
        for (index, value) in list.enumerated() {
            // On Linux a JSON 1 also casts to Bool; JSON booleans have a class of their own.
            guard let number = value as? NSNumber, type(of: value as AnyObject) != jsonBooleanClass else {
                throw RequestError("lengths[\(index)] is not a number; lengths must be positive integers")
            }
            let length = number.doubleValue
            guard length == length.rounded(), length > 0 else {
                throw RequestError("lengths[\(index)] is \(number), not a positive integer")
            }
            guard length <= Double(Limits.maxSequenceLength) else {
                throw RequestError("lengths[\(index)] is \(number), over the limit of \(Limits.maxSequenceLength) tokens")
            }
            lengths.append(Int(length))
        }
        var model = costModel
        if let document = request["cost_model"] {
            guard document is [String: Any], JSONSerialization.isValidJSONObject(document) else {
                throw RequestError("\"cost_model\" must be an object (a cost-model document)")
            }
            model = try CostModel(json: JSONSerialization.data(withJSONObject: document))
        }
        var strategy = self.strategy
        if let name = request["strategy"] {
            guard let text = name as? String else { throw RequestError("\"strategy\" must be a string") }
            strategy = try Strategy(parsing: text)
        }
        return try await planner.plan(Batch(lengths: lengths, costModel: model), strategy: strategy)
    }

    private func reply(id: Any?, error: String) -> Data {
        var data = Data("{\"id\":".utf8)
        data.append(encodeID(id))
        data.append(contentsOf: Array(",\"error\":".utf8))
        let text = (try? JSONSerialization.data(withJSONObject: error, options: [.fragmentsAllowed])) ?? Data("\"error\"".utf8)
        data.append(text)
        data.append(contentsOf: Array("}".utf8))
        return data
    }

    private func encodeID(_ id: Any?) -> Data {
        guard let id, !(id is NSNull),
              let data = try? JSONSerialization.data(withJSONObject: id, options: [.fragmentsAllowed, .sortedKeys]) else {
            return Data("null".utf8)
        }
        return data
    }
}

/// The class JSONSerialization gives `true` and `false`.
private let jsonBooleanClass: AnyClass = type(of: try! JSONSerialization.jsonObject(
    with: Data("true".utf8), options: .fragmentsAllowed) as AnyObject)

struct RequestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
