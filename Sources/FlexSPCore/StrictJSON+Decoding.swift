import Foundation

/// Plain words for a decoder's error: the dotted path of the field and what is wrong with it.
enum DecodingFault {
    /// Keys whose values must be integers, and keys whose values must be lists of integers, in
    /// the cost-model and plan documents.
    static let integerKeys: Set<String> = ["version", "world_size", "gpus_per_node", "max_degree", "id", "length", "degree", "first_rank", "tokens"]
    static let integerListKeys: Set<String> = ["sequence_ids"]

    /// Foundation on Linux reports a number that does not fit an `Int` field (64.5, 1e300) as
    /// "not valid JSON" with no path; this finds the first such field itself.
    static func nonInteger(in data: Data) -> (field: String, value: String)? {
        guard let root = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else { return nil }
        func isInteger(_ value: Any) -> Bool {
            guard let number = value as? NSNumber else { return true }
            return Int(number.description) != nil
        }
        func walk(_ value: Any, _ path: String) -> (String, String)? {
            if let object = value as? [String: Any] {
                for key in object.keys.sorted() {
                    let child = object[key]!
                    let here = path.isEmpty ? key : "\(path).\(key)"
                    if integerKeys.contains(key), child is NSNumber, !isInteger(child) { return (here, "\(child)") }
                    if integerListKeys.contains(key), let list = child as? [Any] {
                        for (i, item) in list.enumerated() where item is NSNumber && !isInteger(item) { return ("\(here)[\(i)]", "\(item)") }
                    }
                    if let found = walk(child, here) { return found }
                }
            } else if let list = value as? [Any] {
                for (i, item) in list.enumerated() {
                    if let found = walk(item, "\(path)[\(i)]") { return found }
                }
            }
            return nil
        }
        return walk(root, "")
    }

    static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue.quotedForMessage(limit: 40).dropFirst().dropLast())" }.joined()
            .trimmingCharacters(in: CharacterSet(charactersIn: "."))
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: "an integer"
        case is Double.Type: "a number"
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        default:
            "\(type)".hasPrefix("Array") ? "a list" : "\(type)".hasPrefix("Dictionary") ? "an object" : "an object of the contract's form"
        }
    }

    static func describe(_ error: DecodingError) -> (field: String, why: String) {
        switch error {
        case .keyNotFound(let key, let context): return (path(context.codingPath + [key]), "is missing")
        case .typeMismatch(let type, let context):
            if context.codingPath.isEmpty { return ("", "the document must be a JSON object") }
            return (path(context.codingPath), "should be \(typeName(type))")
        case .valueNotFound(let type, let context): return (path(context.codingPath), "should be \(typeName(type)), found null")
        case .dataCorrupted(let context):
            let field = path(context.codingPath)
            // Foundation's words for a number that is not an Int: "Parsed JSON number <64.5> does not fit in Int."
            if context.debugDescription.contains("does not fit") {
                let number = context.debugDescription.split(separator: "<").dropFirst().first?.split(separator: ">").first
                return (field, "should be an integer in range, got \(number.map(String.init) ?? "another number")")
            }
            return (field, field.isEmpty ? "the document is not JSON of the contract's form" : "has a value of the wrong form")
        @unknown default: return ("", "the document could not be decoded")
        }
    }
}
