import Testing
@testable import Agent
import VaktpostCore
import VaktpostPosix

@Suite struct ScenarioAndStateTests {
    let sensors = [SensorID("bed")!, SensorID("door")!]

    @Test(arguments: [
        ("{\"at\": \"2026-03-29T01:50:00+01:00\", \"sensor\": \"bed\", \"reading\": {\"occupied\": false}}\n{oops", 2, "not valid JSON"),
        ("{\"at\": \"2026-03-29T01:50:00+01:00\", \"sensor\": \"sofa\", \"seen\": true}", 1, "unknown sensor \"sofa\""),
        ("{\"at\": \"2026-03-29T02:00:00+01:00\", \"sensor\": \"bed\", \"seen\": true}\n\n# note\n{\"at\": \"2026-03-29T01:00:00+01:00\", \"sensor\": \"bed\", \"seen\": true}", 4, "time goes backwards"),
        ("{\"at\": \"2026-03-29T01:50:00+01:00\", \"sensor\": \"bed\", \"reading\": {\"occupid\": true}}", 1, "unknown reading key \"occupid\""),
        ("{\"at\": \"2026-03-29 01:50\", \"sensor\": \"bed\", \"seen\": true}", 1, "not an RFC 3339 time"),
        ("{\"sensor\": \"bed\", \"seen\": true}", 1, "missing \"at\""),
        ("{\"at\": \"2026-03-29T01:50:00+01:00\", \"sensor\": \"bed\", \"reading\": {\"battery\": 140}}", 1, "0-100"),
        ("{\"at\": \"2026-03-29T01:50:00+01:00\", \"sensor\": \"bed\"}", 1, "\"reading\" must be an object"),
        ("{\"at\": \"2026-03-29T01:50:00+01:00\", \"restart\": true, \"sensor\": \"bed\"}", 1, "only \"at\" and \"restart\""),
        ("[1, 2]", 1, "must be a JSON object"),
    ])
    func scenarioErrorsNameTheLine(text: String, line: Int, fragment: String) {
        guard case .failure(let e) = Scenario.parse(text, sensors: sensors) else { Issue.record("parsed"); return }
        #expect(e.line == line)
        #expect(e.message.contains(fragment), "\(e.message)")
    }

    @Test func scenarioLinesParse() throws {
        let text = """
            {"at": "2026-03-29T01:50:00+01:00", "sensor": "bed", "reading": {"occupied": false, "battery": 80, "rssi": -70}}
            {"at": "2026-03-29T01:51:00+01:00", "sensor": "door", "seen": true}
            {"at": "2026-03-29T02:00:00+01:00", "restart": true}
            {"at": "2026-03-29T03:00:00+02:00", "end": true}
            {"at": "2026-03-29T04:00:00+02:00", "sensor": "bed", "seen": true}
            """
        let steps = try Scenario.parse(text, sensors: sensors).get()
        #expect(steps.count == 4)  // nothing after "end" is read
        guard case .reading(let r) = steps[0].step else { Issue.record("reading"); return }
        #expect(r.values == ReadingValues(occupied: false, battery: 80, rssi: -70))
        #expect(steps[2].step == .restart(at: RFC3339.parse("2026-03-29T02:00:00+01:00")!.time))
    }

    @Test func stateStoreRoundTripsAndReportsDamage() throws {
        try withTemporaryDirectory { dir in
            let store = RuleStateStore(path: dir + "/rules.state.json")
            #expect(try store.load() == EngineState())  // nothing saved yet: a fresh state
            let (config, zone) = try fixtureConfig("home")
            let engine = RuleEngine(config: config, zone: zone)
            var state = EngineState()
            var events = EventFactory(rng: SplitMix64(seed: 1)) { EventTime(wall: $0, utcOffsetSeconds: 0, boottimeNanoseconds: 0, bootID: "b", clockSynced: true) }
            let t = RFC3339.parse("2026-11-24T02:10:00+01:00")!.time
            engine.handle(Reading(sensor: SensorID("bed")!, receivedAt: t, values: ReadingValues(occupied: true)), state: &state, events: &events)
            engine.handle(Reading(sensor: SensorID("bed")!, receivedAt: t + .seconds(60), values: ReadingValues(occupied: false)), state: &state, events: &events)
            try store.save(state)
            #expect(try store.load() == state)
            #expect(try Files.status(dir + "/rules.state.json").mode == 0o600)
            try Files.writeAtomically(dir + "/rules.state.json", Array("{\"version\": 1, \"now\": \"x\"}".utf8))
            #expect(throws: RuleStateError.self) { try store.load() }
        }
    }

    @Test func jsonParserAcceptsWhatTheWriterWritesAndRejectsBrokenText() throws {
        let v = JSONValue.object([("a", .array([.int(-12), .double(2.5), .null, .bool(true)])), ("s", .string("æ\"\\\n\u{01}😀"))])
        #expect(try JSONValue.parse(v.serialized) == v)
        #expect(try JSONValue.parse("\"\\ud83d\\ude00\"") == .string("😀"))
        for broken in ["", "{", "{\"a\" 1}", "[1,]", "01", "\"open", "{\"a\":1,\"a\":2}", "tru", "1 2"] {
            #expect(throws: JSONParseError.self, "\(broken)") { try JSONValue.parse(broken) }
        }
    }
}

@Test func aScenarioSavedWithWindowsLineEndingsReadsLineByLine() throws {
    let text = "{\"at\": \"2026-03-29T01:50:00+01:00\", \"sensor\": \"bed\", \"seen\": true}\r\n{\"at\": \"2026-03-29T02:00:00+01:00\", \"end\": true}\r\n"
    let steps = try Scenario.parse(text, sensors: [SensorID("bed")!]).get()
    #expect(steps.map(\.line) == [1, 2])
}
