import Foundation

/// A strict RFC 8259 syntax check, run on every JSON document and request before it is
/// decoded. Foundation's decoders on Linux accept more than the RFC (trailing commas, for
/// one) and silently keep the last of duplicate keys; this check refuses both, and also
/// numbers beyond a `Double`'s range, invalid UTF-8, and nesting deeper than
/// `Limits.maxJSONDepth`, naming the line and column of the first fault.
///
///     try StrictJSON.check(Array(#"{"id": 1, "lengths": [4096,]}"#.utf8))
///     // throws: line 1, column 28: expected a value, found ']'
///
/// - Complexity: O(n) in the document's size.
public enum StrictJSON {
    /// Why a document is not strict JSON, with where.
    public struct SyntaxError: Error, Equatable, CustomStringConvertible {
        public var line: Int
        public var column: Int
        public var reason: String
        public var description: String { "line \(line), column \(column): \(reason)" }
    }

    /// Throws the first fault of the document, if any.
    public static func check(_ bytes: some Collection<UInt8>) throws(SyntaxError) {
        var parser = Parser(bytes: Array(bytes))
        try parser.document()
    }

    private struct Parser {
        let bytes: [UInt8]
        var at = 0
        var depth = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        func fail(_ reason: String, at position: Int? = nil) -> SyntaxError {
            let end = min(position ?? at, bytes.count)
            var line = 1, lineStart = 0
            for i in 0 ..< end where bytes[i] == UInt8(ascii: "\n") {
                line += 1
                lineStart = i + 1
            }
            // Columns count characters, not bytes.
            let column = bytes[lineStart ..< end].count { $0 & 0xC0 != 0x80 } + 1
            return SyntaxError(line: line, column: column, reason: reason)
        }

        var found: String {
            guard at < bytes.count else { return "the end of the document" }
            let b = bytes[at]
            if b >= 0x21, b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
            return "byte 0x\(String(b, radix: 16, uppercase: true))"
        }

        mutating func document() throws(SyntaxError) {
            guard String(validating: bytes, as: UTF8.self) != nil else {
                var prefix = bytes.count
                while prefix > 0, String(validating: bytes[..<prefix], as: UTF8.self) == nil { prefix = prefix * 3 / 4 }
                throw fail("the document is not UTF-8 text", at: prefix)
            }
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { throw fail("a byte-order mark is not allowed") }
            skipSpace()
            guard at < bytes.count else { throw fail("the document is empty") }
            try value()
            skipSpace()
            guard at == bytes.count else { throw fail("expected the end of the document, found \(found)") }
        }

        mutating func skipSpace() {
            while at < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[at]) { at += 1 }
        }

        mutating func value() throws(SyntaxError) {
            guard at < bytes.count else { throw fail("expected a value, found the end of the document") }
            switch bytes[at] {
            case UInt8(ascii: "{"): try object()
            case UInt8(ascii: "["): try array()
            case UInt8(ascii: "\""): _ = try string()
            case UInt8(ascii: "-"), UInt8(ascii: "0") ... UInt8(ascii: "9"): try number()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            default: throw fail("expected a value, found \(found)")
            }
        }

        mutating func literal(_ word: String) throws(SyntaxError) {
            let w = Array(word.utf8)
            guard bytes[at...].starts(with: w) else { throw fail("expected a value, found \(found)") }
            at += w.count
        }

        mutating func enter() throws(SyntaxError) {
            depth += 1
            guard depth <= Limits.maxJSONDepth else { throw fail("nested deeper than \(Limits.maxJSONDepth) levels") }
        }

        mutating func object() throws(SyntaxError) {
            try enter()
            at += 1
            skipSpace()
            var keys = Set<String>()
            if at < bytes.count, bytes[at] == UInt8(ascii: "}") { at += 1; depth -= 1; return }
            while true {
                skipSpace()
                guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") else {
                    throw fail("expected a key in double quotes, found \(found)")
                }
                let keyStart = at
                let key = try string()
                guard keys.insert(key).inserted else {
                    throw fail("duplicate key \(key.quotedForMessage())", at: keyStart)
                }
                skipSpace()
                guard at < bytes.count, bytes[at] == UInt8(ascii: ":") else { throw fail("expected ':' after a key, found \(found)") }
                at += 1
                skipSpace()
                try value()
                skipSpace()
                guard at < bytes.count else { throw fail("expected ',' or '}', found the end of the document") }
                if bytes[at] == UInt8(ascii: ",") { at += 1; continue }
                if bytes[at] == UInt8(ascii: "}") { at += 1; depth -= 1; return }
                throw fail("expected ',' or '}', found \(found)")
            }
        }

        mutating func array() throws(SyntaxError) {
            try enter()
            at += 1
            skipSpace()
            if at < bytes.count, bytes[at] == UInt8(ascii: "]") { at += 1; depth -= 1; return }
            while true {
                skipSpace()
                try value()
                skipSpace()
                guard at < bytes.count else { throw fail("expected ',' or ']', found the end of the document") }
                if bytes[at] == UInt8(ascii: ",") { at += 1; continue }
                if bytes[at] == UInt8(ascii: "]") { at += 1; depth -= 1; return }
                throw fail("expected ',' or ']', found \(found)")
            }
        }

        /// Reads a string and returns its decoded text (for duplicate-key checks).
        mutating func string() throws(SyntaxError) -> String {
            at += 1
            var units: [UInt16] = []
            var start = at
            func flush(_ end: Int) { units += String(decoding: bytes[start ..< end], as: UTF8.self).utf16 }
            while true {
                guard at < bytes.count else { throw fail("a string is not closed") }
                let b = bytes[at]
                if b == UInt8(ascii: "\"") { flush(at); at += 1; return String(decoding: units, as: UTF16.self) }
                if b < 0x20 { throw fail("a control character (byte 0x\(String(b, radix: 16, uppercase: true))) must be escaped inside a string") }
                if b == UInt8(ascii: "\\") {
                    flush(at)
                    at += 1
                    guard at < bytes.count else { throw fail("a string is not closed") }
                    switch bytes[at] {
                    case UInt8(ascii: "\""): units.append(0x22)
                    case UInt8(ascii: "\\"): units.append(0x5C)
                    case UInt8(ascii: "/"): units.append(0x2F)
                    case UInt8(ascii: "b"): units.append(0x08)
                    case UInt8(ascii: "f"): units.append(0x0C)
                    case UInt8(ascii: "n"): units.append(0x0A)
                    case UInt8(ascii: "r"): units.append(0x0D)
                    case UInt8(ascii: "t"): units.append(0x09)
                    case UInt8(ascii: "u"):
                        guard at + 4 < bytes.count, let unit = UInt16(String(decoding: bytes[at + 1 ... at + 4], as: UTF8.self), radix: 16),
                              bytes[at + 1 ... at + 4].allSatisfy({ isHexDigit($0) }) else {
                            throw fail("\\u must be followed by four hexadecimal digits")
                        }
                        units.append(unit)
                        at += 4
                    default: throw fail("unknown escape '\\\(Character(Unicode.Scalar(bytes[at])))' in a string")
                    }
                    at += 1
                    start = at
                    continue
                }
                at += 1
            }
        }

        func isHexDigit(_ b: UInt8) -> Bool {
            (UInt8(ascii: "0") ... UInt8(ascii: "9")).contains(b) || (UInt8(ascii: "a") ... UInt8(ascii: "f")).contains(b)
                || (UInt8(ascii: "A") ... UInt8(ascii: "F")).contains(b)
        }

        mutating func number() throws(SyntaxError) {
            let start = at
            func digits() -> Int {
                let from = at
                while at < bytes.count, (UInt8(ascii: "0") ... UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
                return at - from
            }
            if bytes[at] == UInt8(ascii: "-") { at += 1 }
            guard at < bytes.count, (UInt8(ascii: "0") ... UInt8(ascii: "9")).contains(bytes[at]) else {
                throw fail("a number needs a digit after '-'")
            }
            if bytes[at] == UInt8(ascii: "0") {
                at += 1
                if at < bytes.count, (UInt8(ascii: "0") ... UInt8(ascii: "9")).contains(bytes[at]) {
                    throw fail("a number may not have a leading zero", at: start)
                }
            } else {
                _ = digits()
            }
            if at < bytes.count, bytes[at] == UInt8(ascii: ".") {
                at += 1
                guard digits() > 0 else { throw fail("a number needs digits after '.'") }
            }
            if at < bytes.count, bytes[at] == UInt8(ascii: "e") || bytes[at] == UInt8(ascii: "E") {
                at += 1
                if at < bytes.count, bytes[at] == UInt8(ascii: "+") || bytes[at] == UInt8(ascii: "-") { at += 1 }
                guard digits() > 0 else { throw fail("a number needs digits in its exponent") }
            }
            let text = String(decoding: bytes[start ..< at], as: UTF8.self)
            guard let value = Double(text), value.isFinite else {
                throw fail("the number \(text.quotedForMessage(limit: 30)) is out of range", at: start)
            }
        }
    }
}

extension JSONEncoder {
    /// The encoder for every document FlexSP writes: sorted keys so output is reproducible.
    public static var flexsp: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
