import Testing
@testable import VaktpostCore

@Suite struct TOMLTests {
    func parse(_ text: String) throws -> TOMLTable {
        switch TOMLTable.parse(text) {
        case .success(let t): return t
        case .failure(let e): throw e
        }
    }

    func errors(_ text: String) -> [TOMLSyntaxError] {
        if case .failure(let e) = TOMLTable.parse(text) { return e.errors }
        return []
    }

    @Test func keysAndValuesKeepTheirPositions() throws {
        let t = try parse("""
            # comment
            [hub]
            id   = "hub-0001"
              timezone = 'Europe/Oslo'  # trailing
            """)
        guard case .table(let hub)? = t["hub"]?.value else { Issue.record("no hub"); return }
        #expect(hub.keys == ["id", "timezone"])
        #expect(hub["id"]?.keyLocation == SourceLocation(line: 3, column: 1))
        #expect(hub["id"]?.location == SourceLocation(line: 3, column: 8))
        #expect(hub["timezone"]?.keyLocation == SourceLocation(line: 4, column: 3))
        guard case .string(let tz)? = hub["timezone"]?.value else { Issue.record("no tz"); return }
        #expect(tz == "Europe/Oslo")
    }

    @Test func columnsCountCharactersNotBytes() {
        // a, space, =, space, ", æ, ø, å, ", space: the stray x is the 11th character.
        #expect(errors("a = \"æøå\" x").first?.location == SourceLocation(line: 1, column: 11))
    }

    @Test(arguments: [
        ("a = \"tab\\there\"", "tab\there"),
        ("a = \"quote \\\" and \\\\\"", "quote \" and \\"),
        ("a = \"\\u00e6\\U0001F600\"", "æ😀"),
        ("a = 'C:\\path\\no\\escapes'", "C:\\path\\no\\escapes"),
        ("a = \"\"\"\nfirst\nsecond\"\"\"", "first\nsecond"),
        ("a = \"\"\"one \\\n    two\"\"\"", "one two"),
        ("a = '''\nraw \\n text'''", "raw \\n text"),
        ("a = \"\"\"\"\"quoted\"\"\"\"\"", "\"\"quoted\"\""),
    ])
    func strings(source: String, expected: String) throws {
        guard case .string(let s)? = try parse(source)["a"]?.value else { Issue.record("not a string"); return }
        #expect(s == expected)
    }

    @Test(arguments: [
        ("a = 42", Int64(42)), ("a = +17", 17), ("a = -5", -5), ("a = 1_000_000", 1_000_000),
        ("a = 0xDEAD_beef", 0xDEAD_BEEF), ("a = 0o755", 0o755), ("a = 0b1101", 13), ("a = 0", 0),
    ])
    func integers(source: String, expected: Int64) throws {
        guard case .integer(let v)? = try parse(source)["a"]?.value else { Issue.record("not an integer"); return }
        #expect(v == expected)
    }

    @Test(arguments: [("a = 3.25", 3.25), ("a = -1e3", -1000), ("a = 6.626e-34", 6.626e-34), ("a = 1_0.5", 10.5), ("a = +inf", Double.infinity)])
    func floats(source: String, expected: Double) throws {
        guard case .float(let v)? = try parse(source)["a"]?.value else { Issue.record("not a float"); return }
        #expect(v == expected)
    }

    @Test(arguments: ["1979-05-27T07:32:00Z", "1979-05-27T00:32:00.999999-07:00", "1979-05-27", "07:32:00", "1979-05-27T07:32:00"])
    func dateTimes(text: String) throws {
        guard case .dateTime(let v)? = try parse("a = \(text)")["a"]?.value else { Issue.record("not a date"); return }
        #expect(v == text)
    }

    @Test func arraysInlineTablesAndArraysOfTables() throws {
        let t = try parse("""
            list = [ 1, 2,
              3, # comment
            ]
            point = { x = 1, y.z = 2 }
            [[sensors]]
            id = "bed"
            [[sensors]]
            id = "door"
            [sensors.extra]
            k = true
            """)
        guard case .array(let list)? = t["list"]?.value else { Issue.record("list"); return }
        #expect(list.count == 3)
        guard case .table(let point)? = t["point"]?.value, case .table(let y)? = point["y"]?.value,
              case .integer(2)? = y["z"]?.value else { Issue.record("point"); return }
        guard case .array(let sensors)? = t["sensors"]?.value else { Issue.record("sensors"); return }
        #expect(sensors.count == 2)
        guard case .table(let second) = sensors[1].value, case .table(let extra)? = second["extra"]?.value,
              case .boolean(true)? = extra["k"]?.value else { Issue.record("extra belongs to the last [[sensors]]"); return }
        #expect(sensors[1].location.line == 7)
    }

    @Test(arguments: [
        ("a = 1\na = 2", 2, "set twice"),
        ("[t]\n[t]", 2, "defined twice"),
        ("a = \"open", 1, "no closing"),
        ("a = hello", 1, "strings need quotes"),
        ("a = 30m", 1, "needs quotes"),
        ("a = 1 b = 2", 1, "end of the line"),
        ("a = { x = 1 }\na.y = 2", 2, "inline table"),
        ("a = [1, 2", 1, "expected ','"),
        ("a = 007", 1, "not a number"),
        ("a = \"\\q\"", 1, "unknown escape"),
        ("= 1", 1, "expected a key"),
        ("a", 1, "has no value"),
        ("[[a]]\n[a]", 2, "already a list"),
        ("a = 1\n[a]", 2, "already"),
    ])
    func syntaxErrorsNameTheLine(source: String, line: Int, fragment: String) {
        let e = errors(source)
        #expect(e.count >= 1)
        #expect(e.first?.location.line == line)
        #expect(e.first?.message.contains(fragment) == true, "\(e.first?.message ?? "no error")")
    }

    @Test func everySyntaxErrorIsReportedNotJustTheFirst() {
        let e = errors("a = hello\nb = 2\nc = \"open\nd = 4\ne = 1 2\n")
        #expect(e.map(\.location.line) == [1, 3, 5])
    }

    @Test func crlfLineEndingsAndByteOrderMark() throws {
        let t = try parse("\u{FEFF}[hub]\r\nid = \"x\"\r\n")
        guard case .table(let hub)? = t["hub"]?.value else { Issue.record("hub"); return }
        #expect(hub["id"]?.location == SourceLocation(line: 2, column: 6))
    }
}
