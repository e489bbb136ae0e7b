/// A JSON value whose objects keep their key order, so what the agent writes (events, `--json`
/// output, heartbeats) reads the same way every time and diffs cleanly in tests.
public indirect enum JSONValue: Hashable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public func hash(into h: inout Hasher) {
        switch self {
        case .null: h.combine(0)
        case .bool(let v): h.combine(v)
        case .int(let v): h.combine(v)
        case .double(let v): h.combine(v)
        case .string(let v): h.combine(v)
        case .array(let v): h.combine(v)
        case .object(let v):
            for (k, x) in v {
                h.combine(k)
                h.combine(x)
            }
        }
    }

    public subscript(key: String) -> JSONValue? {
        guard case .object(let fields) = self else { return nil }
        return fields.first { $0.0 == key }?.1
    }

    /// Compact JSON on one line: what JSONL output and request bodies use.
    public var serialized: String { String(decoding: serializedBytes, as: UTF8.self) }

    /// The same as UTF-8 bytes: what request bodies and stored events are.
    public var serializedBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(to: &out)
        return out
    }

    /// Written as bytes, not appended to a String piece by piece: after an outage the agent
    /// writes every event and the receiver every one it stores, and a String's per-append
    /// bookkeeping was most of what that cost.
    public func write(to out: inout [UInt8]) {
        switch self {
        case .null: out += "null".utf8
        case .bool(let v): out += (v ? "true" : "false").utf8
        case .int(let v): out += String(v).utf8
        case .double(let v):
            // JSON has no NaN or infinity; a sensor value that became one is better absent than invalid.
            if v.isFinite {
                out += (v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)).utf8
            } else {
                out += "null".utf8
            }
        case .string(let v): JSONValue.writeString(v, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                item.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let fields):
            out.append(UInt8(ascii: "{"))
            for (i, (key, value)) in fields.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.writeString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Only ASCII bytes are escaped, and no byte of a multi-byte UTF-8 sequence is ASCII, so the
    /// runs between them are copied whole (most strings, ids, types and times, are one run).
    static func writeString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { bytes in
            var run = 0
            for (i, b) in bytes.enumerated() where b == 0x22 || b == 0x5C || b < 0x20 {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<i]))
                run = i + 1
                switch b {
                case 0x22: out += #"\""#.utf8
                case 0x5C: out += #"\\"#.utf8
                case 0x0A: out += #"\n"#.utf8
                case 0x0D: out += #"\r"#.utf8
                case 0x09: out += #"\t"#.utf8
                default:
                    out += #"\u00"#.utf8
                    out.append(Hex.digit(b >> 4))
                    out.append(Hex.digit(b))
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run...]))
        }
        out.append(UInt8(ascii: "\""))
    }
}

extension JSONValue {
    /// Builds an object, dropping keys whose value is nil (absent is how JSON says "unknown").
    public static func object(dropping fields: [(String, JSONValue?)]) -> JSONValue {
        .object(fields.compactMap { key, value in value.map { (key, $0) } })
    }
}
