/// A TOML 1.0 reader that remembers where every key and value stood in the file.
///
/// Why not TOMLKit: it reports positions only for syntax errors, while a technician needs the
/// line of a misspelled key or a bad duration just as much; it also imports Foundation
/// (`Calendar`, `DateComponents`) into the agent and compiles a vendored C++ parser. The agent's
/// config is small, and a position-keeping reader of the whole TOML 1.0 grammar is a few hundred
/// lines of stdlib Swift (checked against Python's tomllib in the tests).

public struct SourceLocation: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public static func < (a: SourceLocation, b: SourceLocation) -> Bool { (a.line, a.column) < (b.line, b.column) }

    public var description: String { "\(line):\(column)" }
}

public struct TOMLSyntaxError: Error, Equatable, Sendable {
    public var location: SourceLocation
    public var message: String
}

/// Every syntax error of one document, in file order.
public struct TOMLSyntaxErrors: Error, Equatable, Sendable {
    public var errors: [TOMLSyntaxError]
}

public enum TOMLValue {
    case string(String)
    case integer(Int64)
    case float(Double)
    case boolean(Bool)
    /// Offset or local date-time, local date or local time, kept as written.
    case dateTime(String)
    case array([TOMLNode])
    case table(TOMLTable)

    /// How a technician would name this kind of value in an error message.
    public var kindName: String {
        switch self {
        case .string: return "a string"
        case .integer: return "an integer"
        case .float: return "a number with a fraction"
        case .boolean: return "true/false"
        case .dateTime: return "a date/time"
        case .array: return "a list"
        case .table: return "a table"
        }
    }
}

public struct TOMLNode {
    public var value: TOMLValue
    /// Where the key that names this value starts (for array elements: the value itself).
    public var keyLocation: SourceLocation
    /// Where the value starts.
    public var location: SourceLocation
}

/// A TOML table. Keys keep the order they were written in, so errors come out in file order.
public final class TOMLTable {
    enum Origin { case implicit, header, dotted, inline }

    public private(set) var keys: [String] = []
    private var entries: [String: TOMLNode] = [:]
    /// Keys whose value is an array of tables (`[[name]]`), the only arrays that may grow.
    private var tableArrays: Set<String> = []
    var origin: Origin
    public internal(set) var location: SourceLocation

    init(origin: Origin, location: SourceLocation) {
        self.origin = origin
        self.location = location
    }

    public subscript(key: String) -> TOMLNode? { entries[key] }

    public var nodes: [(key: String, node: TOMLNode)] { keys.map { ($0, entries[$0]!) } }

    func insert(_ key: String, _ node: TOMLNode) {
        if entries[key] == nil { keys.append(key) }
        entries[key] = node
    }

    func isTableArray(_ key: String) -> Bool { tableArrays.contains(key) }
    func markTableArray(_ key: String) { tableArrays.insert(key) }

    /// Parses a whole document. Syntax errors are collected line by line, so a file with three
    /// typos reports three errors rather than the first one.
    public static func parse(_ text: String) -> Result<TOMLTable, TOMLSyntaxErrors> {
        var parser = TOMLParser(bytes: Array(text.utf8))
        return parser.document()
    }
}

private struct TOMLParser {
    let bytes: [UInt8]
    var pos = 0
    var line = 1
    var column = 1
    let root = TOMLTable(origin: .header, location: SourceLocation(line: 1, column: 1))
    lazy var current: TOMLTable = root

    init(bytes: [UInt8]) {
        self.bytes = bytes
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { pos = 3 }  // a UTF-8 byte order mark from a Windows editor
    }

    struct Failure: Error {
        var location: SourceLocation
        var message: String
    }

    var here: SourceLocation { SourceLocation(line: line, column: column) }
    var atEnd: Bool { pos >= bytes.count }
    var peek: UInt8? { pos < bytes.count ? bytes[pos] : nil }

    func peek(_ offset: Int) -> UInt8? { pos + offset < bytes.count ? bytes[pos + offset] : nil }

    mutating func advance() {
        let b = bytes[pos]
        pos += 1
        if b == 0x0A {
            line += 1
            column = 1
        } else if b & 0xC0 != 0x80 {
            column += 1  // count characters, not the continuation bytes of one
        }
    }

    func fail(_ message: String, at location: SourceLocation? = nil) -> Failure {
        Failure(location: location ?? here, message: message)
    }

    func describe(_ b: UInt8?) -> String {
        guard let b else { return "the end of the file" }
        switch b {
        case 0x0A, 0x0D: return "the end of the line"
        case 0x20...0x7E: return "'\(Character(Unicode.Scalar(b)))'"
        default: return "byte 0x\(String(b, radix: 16))"
        }
    }

    // MARK: Document

    mutating func document() -> Result<TOMLTable, TOMLSyntaxErrors> {
        var errors: [TOMLSyntaxError] = []
        while true {
            skipWhitespace()
            guard let b = peek else { break }
            do {
                switch b {
                case 0x0A:
                    advance()
                    continue
                case 0x0D:
                    try newline()
                    continue
                case 0x23:
                    try comment()
                    continue
                case 0x5B:
                    try tableHeader()
                default:
                    try keyValue(into: current, inline: false)
                }
                try endOfLine()
            } catch {
                errors.append(TOMLSyntaxError(location: error.location, message: error.message))
                skipToNextLine()
            }
        }
        return errors.isEmpty ? .success(root) : .failure(TOMLSyntaxErrors(errors: errors))
    }

    mutating func skipToNextLine() {
        while let b = peek, b != 0x0A { advance() }
        if peek == 0x0A { advance() }
    }

    mutating func skipWhitespace() {
        while let b = peek, b == 0x20 || b == 0x09 { advance() }
    }

    mutating func newline() throws(Failure) {
        if peek == 0x0D {
            guard peek(1) == 0x0A else { throw fail("a carriage return without a line feed") }
            advance()
        }
        advance()
    }

    mutating func comment() throws(Failure) {
        advance()
        while let b = peek, b != 0x0A {
            if b == 0x0D, peek(1) == 0x0A { return }
            if b < 0x20 && b != 0x09 || b == 0x7F { throw fail("a control character in a comment") }
            advance()
        }
    }

    mutating func endOfLine() throws(Failure) {
        skipWhitespace()
        if peek == 0x23 { try comment() }
        guard let b = peek else { return }
        guard b == 0x0A || b == 0x0D else {
            throw fail("expected the end of the line after the value, found \(describe(b)); put one key = value on each line")
        }
        try newline()
    }

    /// Skips whitespace, newlines and comments (inside arrays).
    mutating func skipBlank() throws(Failure) {
        while let b = peek {
            switch b {
            case 0x20, 0x09, 0x0A: advance()
            case 0x0D: try newline()
            case 0x23: try comment()
            default: return
            }
        }
    }

    // MARK: Tables

    mutating func tableHeader() throws(Failure) {
        let start = here
        advance()
        let isArray = peek == 0x5B
        if isArray { advance() }
        skipWhitespace()
        let path = try key()
        skipWhitespace()
        guard peek == 0x5D else { throw fail("expected ']' to close the table header, found \(describe(peek))") }
        advance()
        if isArray {
            guard peek == 0x5D else { throw fail("expected ']]' to close the array-of-tables header") }
            advance()
        }
        let name = path.map(\.name).joined(separator: ".")
        var table = root
        for part in path.dropLast() {
            table = try descend(table, part, creating: .implicit, forHeader: true, name: name)
        }
        let last = path.last!
        if isArray {
            let fresh = TOMLTable(origin: .header, location: start)
            if let existing = table[last.name] {
                guard table.isTableArray(last.name), case .array(var items) = existing.value else {
                    throw fail("[[\(name)]] names a key that is already defined as something else", at: start)
                }
                items.append(TOMLNode(value: .table(fresh), keyLocation: start, location: start))
                table.insert(last.name, TOMLNode(value: .array(items), keyLocation: existing.keyLocation, location: existing.location))
            } else {
                table.insert(last.name, TOMLNode(value: .array([TOMLNode(value: .table(fresh), keyLocation: start, location: start)]), keyLocation: start, location: start))
                table.markTableArray(last.name)
            }
            current = fresh
        } else {
            if let existing = table[last.name] {
                guard case .table(let t) = existing.value else {
                    throw fail("'\(last.name)' is already \(existing.value.kindName) (line \(existing.keyLocation.line)), so [\(name)] cannot be a table", at: start)
                }
                guard t.origin == .implicit else {
                    throw fail("table [\(name)] is defined twice; merge the two sections", at: start)
                }
                t.origin = .header
                t.location = start
                current = t
            } else {
                let fresh = TOMLTable(origin: .header, location: start)
                table.insert(last.name, TOMLNode(value: .table(fresh), keyLocation: start, location: start))
                current = fresh
            }
        }
    }

    /// Steps from `table` into its sub-table `part`, creating it when absent.
    mutating func descend(_ table: TOMLTable, _ part: KeyPart, creating origin: TOMLTable.Origin, forHeader: Bool, name: String) throws(Failure) -> TOMLTable {
        guard let node = table[part.name] else {
            let fresh = TOMLTable(origin: origin, location: part.location)
            table.insert(part.name, TOMLNode(value: .table(fresh), keyLocation: part.location, location: part.location))
            return fresh
        }
        switch node.value {
        case .table(let t):
            if t.origin == .inline { throw fail("'\(name)' reaches into an inline table, which cannot be extended", at: part.location) }
            if !forHeader && t.origin == .header { throw fail("'\(name)' adds to table [\(part.name)] from outside its section", at: part.location) }
            return t
        case .array(let items) where forHeader && table.isTableArray(part.name):
            guard case .table(let t) = items.last!.value else { throw fail("'\(part.name)' is not a table", at: part.location) }
            return t
        default:
            throw fail("'\(part.name)' is already \(node.value.kindName) (line \(node.keyLocation.line)), so '\(name)' cannot be a table", at: part.location)
        }
    }

    // MARK: Keys and values

    struct KeyPart {
        var name: String
        var location: SourceLocation
    }

    mutating func key() throws(Failure) -> [KeyPart] {
        var parts: [KeyPart] = []
        while true {
            let start = here
            let name: String
            switch peek {
            case 0x22:
                name = try basicString()
            case 0x27:
                name = try literalString()
            case let b? where isBareKeyByte(b):
                var s: [UInt8] = []
                while let c = peek, isBareKeyByte(c) {
                    s.append(c)
                    advance()
                }
                name = String(decoding: s, as: UTF8.self)
            default:
                throw fail("expected a key, found \(describe(peek)); keys use letters, digits, '_' and '-', or quotes")
            }
            parts.append(KeyPart(name: name, location: start))
            skipWhitespace()
            guard peek == 0x2E else { return parts }
            advance()
            skipWhitespace()
        }
    }

    func isBareKeyByte(_ b: UInt8) -> Bool {
        (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) || (0x30...0x39).contains(b) || b == 0x5F || b == 0x2D
    }

    mutating func keyValue(into table: TOMLTable, inline: Bool) throws(Failure) {
        let path = try key()
        guard peek == 0x3D else {
            if peek == nil || peek == 0x0A || peek == 0x0D {
                throw fail("'\(path.map(\.name).joined(separator: "."))' has no value; write key = value")
            }
            throw fail("expected '=' after the key, found \(describe(peek))")
        }
        advance()
        skipWhitespace()
        let valueStart = here
        let value = try self.value()
        let name = path.map(\.name).joined(separator: ".")
        var target = table
        for part in path.dropLast() {
            target = try descend(target, part, creating: .dotted, forHeader: false, name: name)
        }
        let last = path.last!
        if let existing = target[last.name] {
            throw fail("'\(name)' is set twice (first on line \(existing.keyLocation.line)); keep one", at: last.location)
        }
        target.insert(last.name, TOMLNode(value: value, keyLocation: path.first!.location, location: valueStart))
    }

    mutating func value() throws(Failure) -> TOMLValue {
        guard let b = peek else { throw fail("expected a value, found the end of the file") }
        switch b {
        case 0x22: return .string(peek(1) == 0x22 && peek(2) == 0x22 ? try multilineBasicString() : try basicString())
        case 0x27: return .string(peek(1) == 0x27 && peek(2) == 0x27 ? try multilineLiteralString() : try literalString())
        case 0x5B: return try array()
        case 0x7B: return try inlineTable()
        case 0x74, 0x66: return try boolean()
        default:
            return try scalarToken()
        }
    }

    mutating func boolean() throws(Failure) -> TOMLValue {
        for (word, v) in [("true", true), ("false", false)] where bytes[pos...].starts(with: word.utf8) {
            for _ in word.utf8 { advance() }
            if let c = peek, isBareKeyByte(c) { break }
            return .boolean(v)
        }
        throw fail("expected a value; strings need quotes, e.g. \"\(tokenPreview())\"")
    }

    func tokenPreview() -> String {
        var end = pos
        while end < bytes.count, end - pos < 24, bytes[end] != 0x0A, bytes[end] != 0x0D, bytes[end] != 0x23 { end += 1 }
        var s = String(decoding: bytes[pos..<end], as: UTF8.self)
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return s
    }

    mutating func array() throws(Failure) -> TOMLValue {
        advance()
        var items: [TOMLNode] = []
        while true {
            try skipBlank()
            if peek == 0x5D {
                advance()
                return .array(items)
            }
            let start = here
            items.append(TOMLNode(value: try value(), keyLocation: start, location: start))
            try skipBlank()
            switch peek {
            case 0x2C: advance()
            case 0x5D:
                advance()
                return .array(items)
            default: throw fail("expected ',' or ']' in the list, found \(describe(peek))")
            }
        }
    }

    mutating func inlineTable() throws(Failure) -> TOMLValue {
        let table = TOMLTable(origin: .inline, location: here)
        advance()
        skipWhitespace()
        if peek == 0x7D {
            advance()
            return .table(table)
        }
        while true {
            skipWhitespace()
            try keyValue(into: table, inline: true)
            skipWhitespace()
            switch peek {
            case 0x2C: advance()
            case 0x7D:
                advance()
                markInline(table)
                return .table(table)
            default: throw fail("expected ',' or '}' in the inline table, found \(describe(peek)); inline tables stay on one line")
            }
        }
    }

    /// Dotted keys inside an inline table create sub-tables that are just as closed as the table.
    func markInline(_ table: TOMLTable) {
        table.origin = .inline
        for (_, node) in table.nodes { if case .table(let t) = node.value { markInline(t) } }
    }

    // MARK: Strings

    mutating func basicString() throws(Failure) -> String {
        advance()
        var out: [UInt8] = []
        while true {
            guard let b = peek, b != 0x0A, b != 0x0D else { throw fail("the string has no closing '\"' on this line") }
            advance()
            switch b {
            case 0x22: return String(decoding: out, as: UTF8.self)
            case 0x5C: try escape(into: &out)
            default:
                if b < 0x20 && b != 0x09 || b == 0x7F { throw fail("a control character in a string; write it as an escape") }
                out.append(b)
            }
        }
    }

    mutating func multilineBasicString() throws(Failure) -> String {
        advance(); advance(); advance()
        if peek == 0x0A { advance() } else if peek == 0x0D, peek(1) == 0x0A { advance(); advance() }
        var out: [UInt8] = []
        while true {
            guard let b = peek else { throw fail("the multi-line string has no closing '\"\"\"'") }
            if b == 0x22, peek(1) == 0x22, peek(2) == 0x22 {
                // Up to two quotes may stand right before the closing delimiter.
                var extra = 0
                while peek(3 + extra) == 0x22, extra < 2 { extra += 1 }
                for _ in 0..<extra { out.append(0x22); advance() }
                advance(); advance(); advance()
                return String(decoding: out, as: UTF8.self)
            }
            advance()
            if b == 0x5C {
                // A backslash at the end of a line swallows the newline and leading whitespace.
                var look = pos
                while look < bytes.count, bytes[look] == 0x20 || bytes[look] == 0x09 { look += 1 }
                if look < bytes.count, bytes[look] == 0x0A || bytes[look] == 0x0D {
                    while let c = peek, c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { advance() }
                    continue
                }
                try escape(into: &out)
            } else {
                if b < 0x20 && b != 0x09 && b != 0x0A && b != 0x0D || b == 0x7F { throw fail("a control character in a string") }
                out.append(b)
            }
        }
    }

    mutating func literalString() throws(Failure) -> String {
        advance()
        var out: [UInt8] = []
        while true {
            guard let b = peek, b != 0x0A, b != 0x0D else { throw fail("the string has no closing \"'\" on this line") }
            advance()
            if b == 0x27 { return String(decoding: out, as: UTF8.self) }
            if b < 0x20 && b != 0x09 || b == 0x7F { throw fail("a control character in a string") }
            out.append(b)
        }
    }

    mutating func multilineLiteralString() throws(Failure) -> String {
        advance(); advance(); advance()
        if peek == 0x0A { advance() } else if peek == 0x0D, peek(1) == 0x0A { advance(); advance() }
        var out: [UInt8] = []
        while true {
            guard let b = peek else { throw fail("the multi-line string has no closing \"'''\"") }
            if b == 0x27, peek(1) == 0x27, peek(2) == 0x27 {
                var extra = 0
                while peek(3 + extra) == 0x27, extra < 2 { extra += 1 }
                for _ in 0..<extra { out.append(0x27); advance() }
                advance(); advance(); advance()
                return String(decoding: out, as: UTF8.self)
            }
            if b < 0x20 && b != 0x09 && b != 0x0A && b != 0x0D || b == 0x7F { throw fail("a control character in a string") }
            out.append(b)
            advance()
        }
    }

    mutating func escape(into out: inout [UInt8]) throws(Failure) {
        guard let e = peek else { throw fail("the string ends inside an escape") }
        let at = here
        advance()
        switch e {
        case 0x62: out.append(0x08)
        case 0x74: out.append(0x09)
        case 0x6E: out.append(0x0A)
        case 0x66: out.append(0x0C)
        case 0x72: out.append(0x0D)
        case 0x22: out.append(0x22)
        case 0x5C: out.append(0x5C)
        case 0x75, 0x55:
            let count = e == 0x75 ? 4 : 8
            var v: UInt32 = 0
            for _ in 0..<count {
                guard let h = peek, let d = Hex.value(h) else { throw fail("\\\(e == 0x75 ? "u" : "U") needs \(count) hex digits", at: at) }
                v = v << 4 | UInt32(d)
                advance()
            }
            guard let scalar = Unicode.Scalar(v) else { throw fail("\\u escape names no Unicode character", at: at) }
            out.append(contentsOf: Array(String(Character(scalar)).utf8))
        default:
            throw fail("unknown escape '\\\(Character(Unicode.Scalar(e)))'; to write a backslash use '\\\\' or a 'literal string'", at: at)
        }
    }

    // MARK: Numbers and dates

    mutating func scalarToken() throws(Failure) -> TOMLValue {
        let start = here
        var token: [UInt8] = []
        func tokenByte(_ b: UInt8) -> Bool {
            isBareKeyByte(b) || b == 0x2B || b == 0x2E || b == 0x3A
        }
        while let b = peek, tokenByte(b) {
            token.append(b)
            advance()
        }
        // A date and a time may be separated by one space: `1979-05-27 07:32:00`.
        if token.count == 10, token[4] == 0x2D, peek == 0x20, let d = peek(1), (0x30...0x39).contains(d) {
            token.append(0x20)
            advance()
            while let b = peek, tokenByte(b) {
                token.append(b)
                advance()
            }
        }
        let text = String(decoding: token, as: UTF8.self)
        guard !token.isEmpty else {
            throw fail("expected a value, found \(describe(peek)); strings need quotes, e.g. \"\(tokenPreview())\"", at: start)
        }
        if let v = TOMLParser.dateTime(token) { return .dateTime(v) }
        if let v = TOMLParser.integer(text) { return .integer(v) }
        if let v = TOMLParser.float(text) { return .float(v) }
        let looksNumeric = token.first.map { (0x30...0x39).contains($0) || $0 == 0x2B || $0 == 0x2D } ?? false
        if looksNumeric {
            throw fail("'\(text)' is not a number TOML can read; text such as durations needs quotes, e.g. \"\(text)\"", at: start)
        }
        throw fail("'\(text)' is not a value; strings need quotes, e.g. \"\(text)\"", at: start)
    }

    static func digitsWithUnderscores(_ s: Substring, allowed: (Character) -> Bool) -> String? {
        guard let first = s.first, let last = s.last, allowed(first), allowed(last) else { return nil }
        var out = ""
        var previousUnderscore = false
        for c in s {
            if c == "_" {
                if previousUnderscore { return nil }
                previousUnderscore = true
                continue
            }
            guard allowed(c) else { return nil }
            previousUnderscore = false
            out.append(c)
        }
        return out
    }

    static func integer(_ text: String) -> Int64? {
        let isDigit: (Character) -> Bool = { $0.isASCII && $0.isNumber }
        for (prefix, radix, allowed) in [
            ("0x", 16, { (c: Character) in c.isHexDigit }), ("0o", 8, { (c: Character) in ("0"..."7").contains(c) }),
            ("0b", 2, { (c: Character) in c == "0" || c == "1" }),
        ] as [(String, Int, (Character) -> Bool)] where text.hasPrefix(prefix) {
            guard let digits = digitsWithUnderscores(text.dropFirst(2), allowed: allowed) else { return nil }
            return Int64(digits, radix: radix)
        }
        var body = Substring(text)
        var sign = ""
        if body.first == "+" || body.first == "-" {
            sign = body.first == "-" ? "-" : ""
            body = body.dropFirst()
        }
        guard let digits = digitsWithUnderscores(body, allowed: isDigit) else { return nil }
        if digits.count > 1 && digits.first == "0" { return nil }  // no leading zeros
        return Int64(sign + digits)
    }

    static func float(_ text: String) -> Double? {
        var body = Substring(text)
        var sign = 1.0
        if body.first == "+" || body.first == "-" {
            sign = body.first == "-" ? -1 : 1
            body = body.dropFirst()
        }
        if body == "inf" { return sign * .infinity }
        if body == "nan" { return .nan }
        let isDigit: (Character) -> Bool = { $0.isASCII && $0.isNumber }
        let expIndex = body.firstIndex { $0 == "e" || $0 == "E" }
        let mantissa = body[..<(expIndex ?? body.endIndex)]
        var cleaned = ""
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let intPart = digitsWithUnderscores(parts[0], allowed: isDigit) else { return nil }
        if intPart.count > 1 && intPart.first == "0" { return nil }
        cleaned = intPart
        if parts.count == 2 {
            guard let frac = digitsWithUnderscores(parts[1], allowed: isDigit) else { return nil }
            cleaned += "." + frac
        }
        if let e = expIndex {
            var exp = body[body.index(after: e)...]
            var expSign = ""
            if exp.first == "+" || exp.first == "-" {
                expSign = String(exp.first!)
                exp = exp.dropFirst()
            }
            guard let expDigits = digitsWithUnderscores(exp, allowed: isDigit) else { return nil }
            cleaned += "e" + expSign + expDigits
        } else if parts.count == 1 {
            return nil  // an integer, handled elsewhere
        }
        guard let v = Double(cleaned) else { return nil }
        return sign * v
    }

    /// Accepts the four TOML date/time forms; returns them as written (separator normalised to `T`).
    static func dateTime(_ t: [UInt8]) -> String? {
        func digits(_ from: Int, _ n: Int) -> Int? {
            guard from + n <= t.count else { return nil }
            var v = 0
            for i in from..<(from + n) {
                guard (0x30...0x39).contains(t[i]) else { return nil }
                v = v * 10 + Int(t[i] - 0x30)
            }
            return v
        }
        func time(_ at: Int) -> Int? {  // returns the index after HH:MM:SS[.frac]
            guard let h = digits(at, 2), h < 24, at + 2 < t.count, t[at + 2] == 0x3A,
                let m = digits(at + 3, 2), m < 60, at + 5 < t.count, t[at + 5] == 0x3A,
                let s = digits(at + 6, 2), s <= 60
            else { return nil }
            var i = at + 8
            if i < t.count, t[i] == 0x2E {
                i += 1
                let fracStart = i
                while i < t.count, (0x30...0x39).contains(t[i]) { i += 1 }
                if i == fracStart { return nil }
            }
            return i
        }
        if let end = time(0) { return end == t.count ? String(decoding: t, as: UTF8.self) : nil }
        guard let y = digits(0, 4), t.count >= 10, t[4] == 0x2D, let mo = digits(5, 2), t[7] == 0x2D, let d = digits(8, 2),
            (1...12).contains(mo), (1...CivilDateTime.daysInMonth(year: y, month: mo)).contains(d)
        else { return nil }
        if t.count == 10 { return String(decoding: t, as: UTF8.self) }
        guard t[10] == 0x54 || t[10] == 0x74 || t[10] == 0x20, var i = time(11) else { return nil }
        if i < t.count {
            if t[i] == 0x5A || t[i] == 0x7A {
                i += 1
            } else if t[i] == 0x2B || t[i] == 0x2D {
                guard let oh = digits(i + 1, 2), oh < 24, i + 3 < t.count, t[i + 3] == 0x3A, let om = digits(i + 4, 2), om < 60
                else { return nil }
                i += 6
            }
        }
        guard i == t.count else { return nil }
        var normalised = t
        normalised[10] = 0x54
        return String(decoding: normalised, as: UTF8.self)
    }
}
