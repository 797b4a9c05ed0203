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
    public func respond(to line: Data) -> Data {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: line, options: [.fragmentsAllowed])
        } catch {
            return reply(id: nil, error: "request is not valid JSON: \(error.localizedDescription)")
        }
        guard let request = object as? [String: Any] else {
            return reply(id: nil, error: "request must be a JSON object like {\"id\": 1, \"lengths\": [...]}")
        }
        let id = request["id"]
        do {
            let plan = try plan(for: request)
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

    private func plan(for request: [String: Any]) throws -> Plan {
        guard let rawLengths = request["lengths"] else { throw RequestError("missing \"lengths\"") }
        guard let list = rawLengths as? [Any] else { throw RequestError("\"lengths\" must be a list of positive integers") }
        var lengths: [Int] = []
        for (index, value) in list.enumerated() {
            // On Linux a JSON 1 also casts to Bool; JSON booleans have a class of their own.
            guard let number = value as? NSNumber, type(of: value as AnyObject) != jsonBooleanClass,
                  Double(number.intValue) == number.doubleValue, number.intValue > 0 else {
                throw RequestError("lengths[\(index)] is \(value), not a positive integer")
            }
            lengths.append(number.intValue)
        }
        var model = costModel
        if let document = request["cost_model"] {
            guard JSONSerialization.isValidJSONObject(document) else { throw RequestError("\"cost_model\" must be an object") }
            model = try CostModel(json: JSONSerialization.data(withJSONObject: document))
        }
        var strategy = self.strategy
        if let name = request["strategy"] {
            guard let text = name as? String else { throw RequestError("\"strategy\" must be a string") }
            strategy = try Strategy(parsing: text)
        }
        return try planner.plan(Batch(lengths: lengths, costModel: model), strategy: strategy)
    }

    private func reply(id: Any?, error: String) -> Data {
        var data = Data("{\"id\":".utf8)
        data.append(encodeID(id))
        data.append(contentsOf: Array(",\"error\":".utf8))
        data.append(try! JSONSerialization.data(withJSONObject: error, options: [.fragmentsAllowed]))
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
