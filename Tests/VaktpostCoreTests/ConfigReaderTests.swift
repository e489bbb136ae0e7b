import Testing
@testable import VaktpostCore

/// A valid base config; each test changes one thing.
let baseConfig = """
    [hub]
    id = "hub-0001"

    [[sensors]]
    id = "bed"
    role = "bed"
    room = "bedroom"
    transport = "enocean"
    sender = "01825DAB"
    eep = "A5-07-01"

    [[sensors]]
    id = "front-door"
    role = "door"
    room = "front-door"
    transport = "ble"
    address = "3c:2e:f5:12:34:56"
    field = "window"

    [[rules]]
    id = "night-bed"
    kind = "not-back-in-bed"
    sensor = "bed"
    window = "22:00-07:00"
    after = "30m"

    [[serial]]
    name = "usb300"
    match = { vendor = "0403", model = "6001" }
    """

@Suite struct ConfigReaderTests {
    @Test func aValidConfigReadsWithDefaults() throws {
        let report = ConfigReader.read(baseConfig)
        #expect(report.diagnostics.isEmpty, "\(report.diagnostics)")
        let c = try #require(report.config)
        #expect(c.hub.timezone == "Europe/Oslo")
        #expect(c.sensors.map(\.id.rawValue) == ["bed", "front-door"])
        #expect(c.sensors[0].batteryLow == 20)
        #expect(c.sensors[0].debounce == .zero)
        #expect(c.sensors[1].ble?.address == "3C:2E:F5:12:34:56")
        #expect(c.rules[0].window?.description == "22:00-07:00")
        #expect(c.rules[0].after == .seconds(1800))
        #expect(c.outbox.path == "/var/lib/vaktpost/outbox.sqlite")
        #expect(c.ble.adapter == "hci0")
        #expect(c.serial[0].baud == 57600)
        #expect(c.serial[0].match == SerialMatch(vendor: "0403", model: "6001", serial: nil))
    }

    /// The issue's acceptance case: a misspelled key, a bad duration and a bad window, all in one run, each with its line.
    @Test func misspelledKeyBadDurationAndBadWindowAreAllReportedWithTheirLines() {
        let text = baseConfig
            .replacingOccurrences(of: "window = \"22:00-07:00\"", with: "windw = \"22:00-07:00\"")
            + """

            [[rules]]
            id = "night-bed-2"
            kind = "not-back-in-bed"
            sensor = "bed"
            window = "25:00-07:00"
            after = "30 min"
            """
        let report = ConfigReader.read(text)
        #expect(report.config == nil)
        let errors = report.errors
        #expect(errors.count == 3, "\(errors.map { $0.rendered(file: "f") })")
        #expect(errors[0].location?.line == line(of: "windw", in: text))
        #expect(errors[0].message.contains("unknown key 'windw'"))
        #expect(errors[0].hint == "did you mean 'window'?")
        #expect(errors[1].location?.line == line(of: "25:00-07:00", in: text))
        #expect(errors[1].message.contains("25:00-07:00"))
        #expect(errors[1].message.contains("hour 25"))
        #expect(errors[2].location?.line == line(of: "30 min", in: text))
        #expect(errors[2].message.contains("30 min"))
        #expect(errors[2].hint?.contains("\"30m\"") == true)
    }

    @Test(arguments: [
        ("[hubb]\nid = 1", "unknown section [hubb]", "did you mean [hub]?"),
        ("[[hub]]\nid = \"x\"", "[hub] is a single section", "write [hub], not [[hub]]"),
        ("[sensors]\nid = \"x\"", "'sensors' is a list of sections", "write each entry as [[sensors]], not [sensors]"),
    ])
    func sectionShapeMistakes(extra: String, message: String, hint: String) {
        let text = extra.hasPrefix("[[hub]]") ? extra : (extra.hasPrefix("[sensors]") ? "[hub]\nid = \"h\"\n" + extra : baseConfig + "\n" + extra)
        let report = ConfigReader.read(text)
        let match = report.errors.first { $0.message.contains(message) }
        #expect(match != nil, "\(report.errors.map(\.message))")
        #expect(match?.hint == hint)
    }

    func errorMessages(replacing old: String, with new: String) -> [String] {
        let text = baseConfig.replacingOccurrences(of: old, with: new)
        #expect(text != baseConfig, "the test's replacement did not apply")
        return ConfigReader.read(text).errors.map { $0.message + " | " + ($0.hint ?? "") }
    }

    @Test(arguments: [
        ("role = \"bed\"", "role = \"bad\"", "role \"bad\" is not known"),
        ("room = \"bedroom\"", "room = \"bedrom\"", "did you mean \"bedroom\"?"),
        ("sender = \"01825DAB\"", "sender = \"01825DA\"", "not an EnOcean id"),
        ("sender = \"01825DAB\"", "sender = \"+1825DAB\"", "not an EnOcean id"),
        ("field = \"window\"", "field = \"window\"\nbthome_key = \"+31d39c1a2b3c4d5e6f708192a3b4c5d\"", "32 hex digits"),
        ("eep = \"A5-07-01\"", "eep = \"A5-99-01\"", "not one the agent decodes"),
        ("address = \"3c:2e:f5:12:34:56\"", "address = \"3c2ef5123456\"", "not a Bluetooth address"),
        ("field = \"window\"", "field = \"windo\"", "did you mean \"window\"?"),
        ("field = \"window\"", "field = \"window\"\nbthome_key = \"abc\"", "32 hex digits"),
        ("field = \"window\"", "field = \"window\"\nsender = \"01825DAB\"", "belongs to transport = \"enocean\""),
        ("id = \"front-door\"", "id = \"bed\"", "used twice"),
        ("id = \"front-door\"", "id = \"Front Door\"", "is not allowed"),
        ("after = \"30m\"", "after = \"0s\"", "longer than 0s"),
        ("after = \"30m\"", "after = \"30m\"\nat = \"09:00\"", "not-back-in-bed rules take only sensor, window, after"),
        ("sensor = \"bed\"", "sensor = \"front-door\"", "needs a bed sensor"),
        ("kind = \"not-back-in-bed\"", "kind = \"not-back-to-bed\"", "did you mean \"not-back-in-bed\"?"),
        ("window = \"22:00-07:00\"", "window = \"22:00-22:00\"", "starts and ends at the same time"),
        ("window = \"22:00-07:00\"", "window = \"22.00-07.00\"", "not a time of day"),
        ("match = { vendor = \"0403\", model = \"6001\" }", "match = { vendor = \"403\" }", "not a USB id"),
        ("match = { vendor = \"0403\", model = \"6001\" }", "match = { vendor = \"+403\" }", "not a USB id"),
        ("match = { vendor = \"0403\", model = \"6001\" }", "path = \"/dev/ttyUSB0\"\nmatch = { vendor = \"0403\" }", "both path and match"),
        ("match = { vendor = \"0403\", model = \"6001\" }", "baud = 57600", "neither path nor match"),
        ("id = \"hub-0001\"", "id = \"hub 1\"", "cannot go in a URL"),
        ("id = \"hub-0001\"", "id = \"hub-0001\"\ntimezone = \"../etc/passwd\"", "not a time zone name"),
        ("[hub]", "[hub]\nsupervison = \"1h\"", "unknown key 'supervison' in [hub]"),
    ])
    func eachMistakeIsNamedWithAFix(old: String, new: String, expected: String) {
        let messages = errorMessages(replacing: old, with: new)
        #expect(messages.contains { $0.contains(expected) }, "\(messages)")
    }

    @Test func platformSettingsAreChecked() {
        let text = baseConfig + """

            [platform]
            url = "http://alarm.example.no"
            client_cert = "/etc/vaktpost/hub.pem"
            pins = ["sha256//tooshort"]
            heartbeat = "10s"
            """
        let messages = ConfigReader.read(text).errors.map(\.message)
        #expect(messages.contains { $0.contains("not an https:// URL") })
        #expect(messages.contains { $0.contains("client_cert and client_key go together") })
        #expect(messages.contains { $0.contains("not an SPKI pin") })
        #expect(messages.contains { $0.contains("outside 30s-1h") })
    }

    @Test func aValidPlatformSection() throws {
        let pin = "sha256//" + String(repeating: "A", count: 43) + "="
        let text = baseConfig + """

            [platform]
            url = "https://alarm.example.no"
            ca_file = "/etc/vaktpost/ca.pem"
            client_cert = "/etc/vaktpost/hub.pem"
            client_key = "/etc/vaktpost/hub.key"
            pins = ["\(pin)", "\(pin)"]
            """
        let report = ConfigReader.read(text)
        let p = try #require(report.config?.platform)
        #expect(p.pins.count == 2)
        #expect(p.heartbeat == .seconds(60))
        #expect(report.locations["platform.ca_file"] == SourceLocation(line: line(of: "ca_file", in: text), column: 11))
    }

    @Test func sizesAcceptUnitsOrBytes() throws {
        let c = try #require(ConfigReader.read(baseConfig + "\n[outbox]\nmax_bytes = \"16MiB\"\nmax_rows = 5000\n").config)
        #expect(c.outbox.maxBytes == 16 << 20)
        #expect(c.outbox.maxRows == 5000)
        let bad = ConfigReader.read(baseConfig + "\n[outbox]\nmax_bytes = \"16MB\"\n")
        #expect(bad.errors.first?.message.contains("not a size") == true)
    }

    @Test func replayNeedsOnlyHubSensorsAndRules() throws {
        let text = """
            [hub]
            id = "replay"
            [[sensors]]
            id = "bed"
            role = "bed"
            room = "bedroom"
            [[rules]]
            id = "night-bed"
            kind = "not-back-in-bed"
            sensor = "bed"
            window = "22:00-07:00"
            after = "30m"
            """
        let replay = ConfigReader.read(text, scope: .replay)
        #expect(replay.diagnostics.isEmpty)
        #expect(replay.config != nil)
        // The agent warns that it cannot hear a sensor without a transport, but it is not an error.
        let agent = ConfigReader.read(text, scope: .agent)
        #expect(agent.config != nil)
        #expect(agent.warnings.first?.message.contains("no transport") == true)
    }

    @Test func afterLongerThanTheWindowWarnsThatTheRuleCanNeverFire() {
        let report = ConfigReader.read(baseConfig.replacingOccurrences(of: "after = \"30m\"", with: "after = \"10h\""))
        #expect(report.config != nil)
        #expect(report.warnings.first?.message.contains("can never fire") == true)
    }

    @Test func syntaxErrorsStopBeforeSettingsAreChecked() {
        let report = ConfigReader.read("[hub]\nid = hub-1\n")
        #expect(report.errors.count == 2)
        #expect(report.errors[0].location?.line == 2)
        #expect(report.errors[1].message.contains("not checked yet"))
    }

    @Test func everyRuleKindReads() throws {
        let text = baseConfig + """

            [[sensors]]
            id = "fall"
            role = "fall"
            room = "bathroom"
            [[sensors]]
            id = "hall"
            role = "motion"
            room = "hallway"
            [[rules]]
            id = "up"
            kind = "not-up-by"
            sensor = "bed"
            at = "09:00"
            [[rules]]
            id = "door-night"
            kind = "door-at-night"
            sensor = "front-door"
            window = "23:00-06:00"
            [[rules]]
            id = "door-open"
            kind = "door-left-open"
            sensor = "front-door"
            after = "15m"
            [[rules]]
            id = "fall"
            kind = "fall"
            sensor = "fall"
            [[rules]]
            id = "fall-button"
            kind = "button"
            sensor = "fall"
            [[rules]]
            id = "quiet"
            kind = "inactivity"
            sensors = ["bed", "hall"]
            window = "08:00-20:00"
            after = "4h"
            """
        let report = ConfigReader.read(text, scope: .replay)
        #expect(report.errors.isEmpty, "\(report.errors)")
        let rules = try #require(report.config?.rules)
        #expect(rules.map(\.kind) == [.notBackInBed, .notUpBy, .doorAtNight, .doorLeftOpen, .fall, .button, .inactivity])
        #expect(rules[1].at?.description == "09:00")
        #expect(rules[6].sensors.map(\.rawValue) == ["bed", "hall"])
    }
}

/// The 1-based line on which `fragment` first appears.
func line(of fragment: String, in text: String) -> Int {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    return (lines.firstIndex { $0.contains(fragment) } ?? -1) + 1
}

extension String {
    func replacingOccurrences(of old: String, with new: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: old) {
            out += rest[..<r.lowerBound] + new
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

@Suite struct ConfigWarningTests {
    @Test func aFallDetectorWithoutARuleIsWarnedAbout() {
        let text = baseConfig + "\n[[sensors]]\nid = \"fall\"\nrole = \"fall\"\nroom = \"bathroom\"\n"
        let report = ConfigReader.read(text, scope: .replay)
        #expect(report.config != nil)
        let w = report.warnings.first { $0.message.contains("has no rule") }
        #expect(w?.location?.line == line(of: "id = \"fall\"", in: text))
        #expect(w?.hint == "add [[rules]] with kind = \"fall\" and sensor = \"fall\"")
    }
}

@Test func serialPingAfterIsConfigurable() throws {
    let c = try #require(ConfigReader.read(baseConfig + "\nping_after = \"2m\"\n").config)
    #expect(c.serial[0].pingAfter == .seconds(120))
    #expect(ConfigReader.read(baseConfig + "\nping_after = \"1s\"\n").errors.first?.message.contains("ping_after below 5s") == true)
}
