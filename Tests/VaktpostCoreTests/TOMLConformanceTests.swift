import Foundation
import Testing
@testable import VaktpostCore

/// The agent's TOML reader against an independent implementation: Python's `tomllib`
/// (CPython 3.11+). Both read the same documents; Python compares the results.
@Suite struct TOMLConformanceTests {
    static let valid: [String] = [
        "a = 1\nb = -2\nc = +3\nd = 1_000\ne = 0xff\nf = 0o17\ng = 0b101\nh = 0",
        "a = 1.5\nb = -0.25\nc = 5e+22\nd = 1e06\ne = -2E-2\nf = 6.626e-34\ng = 224_617.445_991\nh = inf\ni = -inf\nj = 3.0",
        "a = true\nb = false",
        "a = \"basic \\\"q\\\" \\\\ \\t \\u00E9 \\U0001F600\"\nb = 'literal \\n'\nc = \"\"",
        "a = \"\"\"\nRoses are red\nViolets are blue\"\"\"\nb = '''\nline one\n  line two\n'''",
        "a = \"\"\"\nThe quick brown \\\n\n\n  fox jumps over \\\n    the lazy dog.\"\"\"",
        "a = \"\"\"Here are two quotation marks: \"\". Simple enough.\"\"\"\nb = '''That's still pointless,'' she said.'''\nc = \"\"\"\"\"x\"\"\"\"\"",
        "odt1 = 1979-05-27T07:32:00Z\nodt2 = 1979-05-27T00:32:00-07:00\nodt3 = 1979-05-27T00:32:00.999999-07:00\nodt4 = 1979-05-27 07:32:00Z\nldt = 1979-05-27T07:32:00\nld = 1979-05-27\nlt = 07:32:00\nlt2 = 00:32:00.999999",
        "a = [1, 2, 3]\nb = [\"x\", 'y']\nc = [[1, 2], [\"a\", 'b']]\nd = []\ne = [\n  1,\n  2, # two\n]\nf = [1, 2.0, \"mixed\"]",
        "point = { x = 1, y = 2 }\nname = { first = \"Tom\", last = \"Preston-Werner\" }\nanimal = { type.name = \"pug\" }\nempty = {}",
        "[table]\nkey = \"value\"\n[table.sub]\nk = 1\n[other]\n",
        "[dog.\"tater.man\"]\ntype.name = \"pug\"\n[ a . b . c ]\nd = 1",
        "[a.b.c]\nx = 1\n[a]\ny = 2",
        "[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n[fruit.apple.texture]\nsmooth = true",
        "[[products]]\nname = \"Hammer\"\nsku = 738594937\n[[products]]\n[[products]]\nname = \"Nail\"\ncolor = \"gray\"",
        "[[fruits]]\nname = \"apple\"\n[fruits.physical]\ncolor = \"red\"\n[[fruits.varieties]]\nname = \"red delicious\"\n[[fruits.varieties]]\nname = \"granny smith\"\n[[fruits]]\nname = \"banana\"\n[[fruits.varieties]]\nname = \"plantain\"",
        "\"quoted key\" = 1\n'literal key' = 2\n\"\" = 3\nbare-key_1 = 4\n1234 = 5",
        "# only a comment\n\n   \t\n# another",
        "a = 1 # comment\n[t] # comment\nb = \"# not a comment\"",
        "site.\"google.com\" = true\n3.14159 = \"pi\"",
        "a = \"tab\there\"",
        "[hub]\r\nid = \"x\"\r\n",
        "x = [ { a = 1 }, { b = 2 } ]",
        "[sensors.bed]\nmatch = { vendor = \"0403\", model = \"6001\" }",
    ]

    static let invalid: [String] = [
        "a = 1\na = 2",
        "[t]\n[t]",
        "a = \"open",
        "a = hello",
        "a = 30m",
        "a = 1 b = 2",
        "a = { x = 1 }\na.y = 2",
        "a = [1, 2",
        "a = 007",
        "a = \"\\q\"",
        "= 1",
        "a",
        "[[a]]\n[a]",
        "a = 1\n[a]",
        "a = 1__000",
        "a = 1.",
        "a = .5",
        "a = 0x",
        "a = +0xff",
        "a = { x = 1, }",
        "a = {\n x = 1 }",
        "[a]\nb = 1\n[a.b]",
        "a.b = 1\na.b.c = 2",
        "[fruit]\napple.color = \"red\"\n[fruit.apple]",
        "a = 1979-13-27",
        "a = 1979-02-30",
        "a = 25:00:00",
        "a = \"\\u00\"",
        "a = tru",
        "[ ]",
        "a = \"x\" \"y\"",
    ]

    /// Our result in the shape the Python side builds: tagged scalars, nested tables, lists.
    static func tagged(_ v: TOMLValue) -> JSONValue {
        switch v {
        case .string(let s): return .object([("string", .string(s))])
        case .integer(let i): return .object([("integer", .int(i))])
        case .float(let d):
            if d.isNaN { return .object([("float", .string("nan"))]) }
            if d.isInfinite { return .object([("float", .string(d < 0 ? "-inf" : "inf"))]) }
            return .object([("float", .double(d))])
        case .boolean(let b): return .object([("bool", .bool(b))])
        case .dateTime(let text):
            let kind: String
            if text.count <= 8 || text.dropFirst(2).first == ":" { kind = "time" }
            else if text.count == 10 { kind = "date" }
            else if text.hasSuffix("Z") || text.hasSuffix("z") || text.dropFirst(19).contains(where: { $0 == "+" || $0 == "-" }) { kind = "offset" }
            else { kind = "local" }
            return .object([("datetime", .string(kind))])
        case .array(let items): return .array(items.map { tagged($0.value) })
        case .table(let t): return .object(t.nodes.map { ($0.key, tagged($0.node.value)) })
        }
    }

    static let python = #"""
    import datetime, json, sys, tomllib
    def tag(v):
        if isinstance(v, bool): return {"bool": v}
        if isinstance(v, int): return {"integer": v}
        if isinstance(v, float):
            if v != v: return {"float": "nan"}
            if v in (float("inf"), float("-inf")): return {"float": "inf" if v > 0 else "-inf"}
            return {"float": v}
        if isinstance(v, str): return {"string": v}
        if isinstance(v, datetime.datetime): return {"datetime": "offset" if v.tzinfo else "local"}
        if isinstance(v, datetime.date): return {"datetime": "date"}
        if isinstance(v, datetime.time): return {"datetime": "time"}
        if isinstance(v, list): return [tag(x) for x in v]
        return {k: tag(x) for k, x in v.items()}
    for i, case in enumerate(json.load(sys.stdin)):
        try:
            theirs = tag(tomllib.loads(case["doc"]))
        except tomllib.TOMLDecodeError:
            theirs = None
        ours = case["ours"]
        same = (ours is None and theirs is None) or (ours is not None and theirs is not None and ours == theirs)
        print("ok" if same else "MISMATCH %d: ours=%s theirs=%s doc=%r" % (i, json.dumps(ours), json.dumps(theirs), case["doc"]))
    """#

    @Test func agreesWithPythonTomllib() throws {
        let docs = Self.valid + Self.invalid
        let cases = JSONValue.array(docs.map { doc in
            let ours: JSONValue
            switch TOMLTable.parse(doc) {
            case .success(let t): ours = Self.tagged(.table(t))
            case .failure: ours = .null
            }
            return .object([("doc", .string(doc)), ("ours", ours)])
        })
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", Self.python]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data(cases.serialized.utf8))
        try input.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "python3 with tomllib (3.11+) is needed for this test")
        let lines = text.split(separator: "\n")
        #expect(lines.count == docs.count)
        for line in lines where line != "ok" { Issue.record(Comment(rawValue: String(line))) }
    }

    @Test func validCorpusIsValidAndInvalidCorpusIsNot() {
        for doc in Self.valid {
            if case .failure(let e) = TOMLTable.parse(doc) { Issue.record("rejected valid: \(doc.debugDescription): \(e.errors)") }
        }
        for doc in Self.invalid {
            if case .success = TOMLTable.parse(doc) { Issue.record("accepted invalid: \(doc.debugDescription)") }
        }
    }
}
