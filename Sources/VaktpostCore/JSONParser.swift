/// Where and why a JSON text could not be read.
public struct JSONParseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// 1-based character column on the (single) line that was read.
    public var column: Int
    public var message: String
    public var description: String { "column \(column): \(message)" }
}

extension JSONValue {
    /// Parses one JSON text (RFC 8259). Integers that fit in 64 bits stay integers; duplicate
    /// object keys are an error, because in a scenario or a saved state they are always a mistake.
    public static func parse(_ text: String) throws(JSONParseError) -> JSONValue {
        try parse(bytes: Array(text.utf8))
    }

    /// The same from UTF-8 bytes as they came (a body, a file), without making a String of them
    /// first. Invalid UTF-8 inside a string reads as U+FFFD, as `String(decoding:)` has it.
    public static func parse(bytes: [UInt8]) throws(JSONParseError) -> JSONValue {
        var p = JSONReader(bytes: bytes)
        p.skipWhitespace()
        let value = try p.value(depth: 0)
        p.skipWhitespace()
        guard p.pos == p.bytes.count else { throw p.fail("unexpected text after the value") }
        return value
    }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var intValue: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d == d.rounded() && abs(d) < 9e15: return Int64(d)
        default: return nil
        }
    }
    public var objectFields: [(String, JSONValue)]? { if case .object(let f) = self { return f } else { return nil } }
}

private struct JSONReader {
    let bytes: [UInt8]
    var pos = 0

    func fail(_ message: String) -> JSONParseError {
        // Count characters, not bytes, so the column matches what an editor shows.
        let column = bytes[..<min(pos, bytes.count)].filter { $0 & 0xC0 != 0x80 }.count + 1
        return JSONParseError(column: column, message: message)
    }

    mutating func skipWhitespace() {
        while pos < bytes.count {
            switch bytes[pos] {
            case 0x20, 0x09, 0x0A, 0x0D: pos += 1
            default: return
            }
        }
    }

    mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth < 64 else { throw fail("nested too deeply") }
        guard pos < bytes.count else { throw fail("the text ends where a value should be") }
        switch bytes[pos] {
        case 0x7B: return try object(depth: depth)
        case 0x5B: return try array(depth: depth)
        case 0x22: return .string(try string())
        case 0x74: return try literal("true", .bool(true))
        case 0x66: return try literal("false", .bool(false))
        case 0x6E: return try literal("null", .null)
        case 0x2D, 0x30...0x39: return try number()
        default: throw fail("expected a value")
        }
    }

    mutating func literal(_ word: String, _ v: JSONValue) throws(JSONParseError) -> JSONValue {
        guard bytes[pos...].starts(with: word.utf8) else { throw fail("expected \(word)") }
        pos += word.utf8.count
        return v
    }

    mutating func object(depth: Int) throws(JSONParseError) -> JSONValue {
        pos += 1
        var fields: [(String, JSONValue)] = []
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == 0x7D {
            pos += 1
            return .object(fields)
        }
        while true {
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == 0x22 else { throw fail("expected a key in double quotes") }
            let key = try string()
            if fields.contains(where: { $0.0 == key }) { throw fail("the key \"\(key)\" appears twice") }
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == 0x3A else { throw fail("expected ':' after the key") }
            pos += 1
            skipWhitespace()
            fields.append((key, try value(depth: depth + 1)))
            skipWhitespace()
            guard pos < bytes.count else { throw fail("the object has no closing '}'") }
            if bytes[pos] == 0x2C { pos += 1; continue }
            if bytes[pos] == 0x7D { pos += 1; return .object(fields) }
            throw fail("expected ',' or '}'")
        }
    }

    mutating func array(depth: Int) throws(JSONParseError) -> JSONValue {
        pos += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == 0x5D {
            pos += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try value(depth: depth + 1))
            skipWhitespace()
            guard pos < bytes.count else { throw fail("the list has no closing ']'") }
            if bytes[pos] == 0x2C { pos += 1; continue }
            if bytes[pos] == 0x5D { pos += 1; return .array(items) }
            throw fail("expected ',' or ']'")
        }
    }

    mutating func string() throws(JSONParseError) -> String {
        pos += 1
        // Most strings (ids, types, times) have no escape: taken in one piece.
        let start = pos
        while pos < bytes.count {
            let b = bytes[pos]
            if b == 0x22 {
                pos += 1
                return String(decoding: bytes[start..<(pos - 1)], as: UTF8.self)
            }
            if b == 0x5C || b < 0x20 { break }
            pos += 1
        }
        var out = Array(bytes[start..<pos])
        while pos < bytes.count {
            let b = bytes[pos]
            pos += 1
            switch b {
            case 0x22: return String(decoding: out, as: UTF8.self)
            case 0x5C:
                guard pos < bytes.count else { break }
                let e = bytes[pos]
                pos += 1
                switch e {
                case 0x22, 0x5C, 0x2F: out.append(e)
                case 0x62: out.append(0x08)
                case 0x66: out.append(0x0C)
                case 0x6E: out.append(0x0A)
                case 0x72: out.append(0x0D)
                case 0x74: out.append(0x09)
                case 0x75:
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard bytes[pos...].starts(with: [0x5C, 0x75]) else { throw fail("a lone surrogate in \\u escape") }
                        pos += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("a lone surrogate in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("a \\u escape that names no character") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default: throw fail("unknown escape in a string")
                }
            case 0x00..<0x20: throw fail("a control character inside a string")
            default: out.append(b)
            }
        }
        throw fail("the string has no closing quote")
    }

    /// Four hex digits, no sign (`UInt32(_:radix:)` would take `\u+abc`).
    mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard pos + 4 <= bytes.count else { throw fail("\\u needs four hex digits") }
        var v: UInt32 = 0
        for b in bytes[pos..<(pos + 4)] {
            guard let digit = Hex.value(b) else { throw fail("\\u needs four hex digits") }
            v = v << 4 | UInt32(digit)
        }
        pos += 4
        return v
    }

    mutating func number() throws(JSONParseError) -> JSONValue {
        let start = pos
        if bytes[pos] == 0x2D { pos += 1 }
        func digits() -> Int {
            let s = pos
            while pos < bytes.count, (0x30...0x39).contains(bytes[pos]) { pos += 1 }
            return pos - s
        }
        let intStart = pos
        let n = digits()
        guard n > 0 else { throw fail("a number needs digits") }
        if n > 1, bytes[intStart] == 0x30 { throw fail("a number cannot start with 0") }
        var isInteger = true
        if pos < bytes.count, bytes[pos] == 0x2E {
            pos += 1
            isInteger = false
            guard digits() > 0 else { throw fail("a fraction needs digits") }
        }
        if pos < bytes.count, bytes[pos] == 0x65 || bytes[pos] == 0x45 {
            pos += 1
            isInteger = false
            if pos < bytes.count, bytes[pos] == 0x2B || bytes[pos] == 0x2D { pos += 1 }
            guard digits() > 0 else { throw fail("an exponent needs digits") }
        }
        let text = String(decoding: bytes[start..<pos], as: UTF8.self)
        if isInteger, let i = Int64(text) { return .int(i) }
        guard let d = Double(text) else { throw fail("the number cannot be read") }
        return .double(d)
    }
}
