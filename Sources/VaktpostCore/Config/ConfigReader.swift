/// One finding about a config file: where, what is wrong, and what to write instead.
public struct ConfigDiagnostic: Hashable, Sendable {
    public enum Severity: String, Sendable { case error, warning }

    public var severity: Severity
    public var location: SourceLocation?
    public var message: String
    public var hint: String?

    public init(_ severity: Severity, at location: SourceLocation?, _ message: String, hint: String? = nil) {
        self.severity = severity
        self.location = location
        self.message = message
        self.hint = hint
    }

    /// `vaktpost.toml:14:1: error: unknown key 'windw' ...` followed by an indented hint line.
    public func rendered(file: String) -> String {
        var s = file
        if let location { s += ":\(location.line):\(location.column)" }
        s += ": \(severity.rawValue): \(message)"
        if let hint { s += "\n    hint: \(hint)" }
        return s
    }
}

/// The outcome of reading a config file: the config when there is no error, every finding, and
/// where each setting stood so checks made outside the core (files exist, zone is installed)
/// can point at the right line too.
public struct ConfigReport: Sendable {
    public var config: Config?
    /// What could be read even when there are errors, so later checks still see the valid parts.
    public var decoded: Config?
    public var diagnostics: [ConfigDiagnostic]
    /// Dotted paths such as `hub.timezone` or `sensors.bed.bthome_key` to the value's position.
    public var locations: [String: SourceLocation]

    public init(config: Config?, decoded: Config? = nil, diagnostics: [ConfigDiagnostic], locations: [String: SourceLocation]) {
        self.config = config
        self.decoded = decoded ?? config
        self.diagnostics = diagnostics
        self.locations = locations
    }

    public var errors: [ConfigDiagnostic] { diagnostics.filter { $0.severity == .error } }
    public var warnings: [ConfigDiagnostic] { diagnostics.filter { $0.severity == .warning } }
}

extension [ConfigDiagnostic] {
    /// File order; findings without a line go last, in the order they were made.
    public func sortedByLocation() -> [ConfigDiagnostic] {
        enumerated().sorted { a, b in
            switch (a.element.location, b.element.location) {
            case (let x?, let y?): return x == y ? a.offset < b.offset : x < y
            case (nil, nil): return a.offset < b.offset
            case (nil, _): return false
            case (_, nil): return true
            }
        }.map(\.element)
    }
}

/// Which sections a reader expects. `vaktpost replay` needs only the hub, sensors and rules.
public enum ConfigScope: Sendable {
    case agent
    case replay
}

public enum ConfigReader {
    public static let defaultTimezone = "Europe/Oslo"

    public static func read(_ text: String, scope: ConfigScope = .agent) -> ConfigReport {
        switch TOMLTable.parse(text) {
        case .failure(let syntax):
            var diagnostics = syntax.errors.map { ConfigDiagnostic(.error, at: $0.location, $0.message) }
            diagnostics.append(
                ConfigDiagnostic(
                    .error, at: nil, "the file is not valid TOML, so its settings were not checked yet",
                    hint: "fix the lines above, then run the check again"))
            return ConfigReport(config: nil, diagnostics: diagnostics, locations: [:])
        case .success(let root):
            var decoder = ConfigDecoder(scope: scope)
            let config = decoder.decode(root)
            let sorted = decoder.diagnostics.sortedByLocation()
            let hasErrors = sorted.contains { $0.severity == .error }
            return ConfigReport(config: hasErrors ? nil : config, decoded: config, diagnostics: sorted, locations: decoder.locations)
        }
    }

    /// Closest candidate within a small edit distance, for "did you mean" hints.
    public static func suggestion(for word: String, among candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(word, $0)) }.filter { $0.1 <= max(1, min(3, word.count / 3)) }
        return scored.min { $0.1 < $1.1 }?.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let x = Array(a.lowercased())
        let y = Array(b.lowercased())
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var previous = Array(0...y.count)
        for i in 1...x.count {
            var row = [i] + Array(repeating: 0, count: y.count)
            for j in 1...y.count {
                row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
            }
            previous = row
        }
        return previous[y.count]
    }
}

/// Reads one TOML table key by key, remembering which keys were used so the rest can be
/// reported as unknown. Every reader shares one list of diagnostics.
private struct ConfigDecoder {
    let scope: ConfigScope
    var diagnostics: [ConfigDiagnostic] = []
    var locations: [String: SourceLocation] = [:]

    init(scope: ConfigScope) { self.scope = scope }

    mutating func error(_ at: SourceLocation?, _ message: String, hint: String? = nil) {
        diagnostics.append(ConfigDiagnostic(.error, at: at, message, hint: hint))
    }

    mutating func warning(_ at: SourceLocation?, _ message: String, hint: String? = nil) {
        diagnostics.append(ConfigDiagnostic(.warning, at: at, message, hint: hint))
    }

    // MARK: Top level

    static let sections = ["hub", "platform", "sensors", "rules", "outbox", "ble", "serial"]

    mutating func decode(_ root: TOMLTable) -> Config {
        for (key, node) in root.nodes where !ConfigDecoder.sections.contains(key) {
            var hint = "the sections are " + ConfigDecoder.sections.map { "[\($0)]" }.joined(separator: ", ")
            if let s = ConfigReader.suggestion(for: key, among: ConfigDecoder.sections) { hint = "did you mean [\(s)]?" }
            if case .table = node.value {
                error(node.keyLocation, "unknown section [\(key)]", hint: hint)
            } else {
                error(node.keyLocation, "unknown key '\(key)' outside any section", hint: "put settings under their section; " + hint)
            }
        }

        let hub = decodeHub(root)
        let sensors = decodeSensors(root)
        let rules = decodeRules(root, sensors: sensors)
        warnAboutSensorsNoRuleWatches(sensors: sensors, rules: rules, root: root)
        var platform: PlatformConfig? = nil
        var outbox = OutboxConfig(path: OutboxConfig.defaultPath, maxBytes: 64 << 20, maxRows: 200_000)
        var ble = BLEConfig.defaults
        var serial: [SerialConfig] = []
        if scope == .agent {
            platform = decodePlatform(root)
            outbox = decodeOutbox(root, default: outbox)
            ble = decodeBLE(root, default: ble)
            serial = decodeSerial(root)
            crossCheckTransports(sensors: sensors, serial: serial, root: root)
        } else {
            for section in ["platform", "outbox", "ble", "serial"] {
                if let node = root[section] {
                    warning(node.keyLocation, "[\(section)] is not used by replay and was not checked")
                }
            }
        }
        return Config(hub: hub, platform: platform, sensors: sensors, rules: rules, outbox: outbox, ble: ble, serial: serial)
    }

    /// A single table section; `[[x]]` where `[x]` belongs is an error.
    mutating func section(_ root: TOMLTable, _ name: String) -> TableReader? {
        guard let node = root[name] else { return nil }
        switch node.value {
        case .table(let t):
            return TableReader(table: t, context: "[\(name)]", path: name)
        case .array:
            error(node.keyLocation, "[\(name)] is a single section", hint: "write [\(name)], not [[\(name)]]")
        default:
            error(node.keyLocation, "'\(name)' must be a section", hint: "write [\(name)] on a line of its own, with its settings below it")
        }
        return nil
    }

    /// Repeated sections, `[[name]]`.
    mutating func sectionList(_ root: TOMLTable, _ name: String) -> [(TOMLTable, SourceLocation)] {
        guard let node = root[name] else { return [] }
        guard case .array(let items) = node.value else {
            error(node.keyLocation, "'\(name)' is a list of sections", hint: "write each entry as [[\(name)]], not [\(name)]")
            return []
        }
        var tables: [(TOMLTable, SourceLocation)] = []
        for item in items {
            if case .table(let t) = item.value { tables.append((t, item.location)) } else {
                error(item.location, "each entry of '\(name)' must be a table", hint: "write each entry as [[\(name)]]")
            }
        }
        return tables
    }

    // MARK: [hub]

    mutating func decodeHub(_ root: TOMLTable) -> HubConfig {
        guard var r = section(root, "hub") else {
            error(nil, "the [hub] section is missing", hint: "add [hub] with id = \"hub-0001\" and timezone = \"Europe/Oslo\"")
            return HubConfig(id: "", timezone: ConfigReader.defaultTimezone)
        }
        var hub = HubConfig(id: "", timezone: ConfigReader.defaultTimezone)
        if let (id, at) = r.string("id", required: true, &self) {
            if SensorID(id) == nil || id.count > 64 {
                error(at, "hub id \"\(id)\" has characters that cannot go in a URL or certificate name",
                      hint: "use lower-case letters, digits and '-', e.g. \"hub-0001\"; it must equal the CN of the hub certificate")
            }
            hub.id = id
        }
        if let (tz, at) = r.string("timezone", required: false, &self) {
            if ConfigDecoder.isZoneName(tz) {
                hub.timezone = tz
            } else {
                error(at, "\"\(tz)\" is not a time zone name", hint: "write an IANA zone name such as \"Europe/Oslo\"")
            }
            locations["hub.timezone"] = at
        }
        r.finish(allowed: ["id", "timezone"], &self)
        return hub
    }

    static func isZoneName(_ s: String) -> Bool {
        guard !s.isEmpty, !s.hasPrefix("/"), !s.hasSuffix("/") else { return false }
        return s.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { part in
            !part.isEmpty && part != "." && part != ".."
                && part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_+-".contains($0)) }
        }
    }

    // MARK: [platform]

    mutating func decodePlatform(_ root: TOMLTable) -> PlatformConfig? {
        guard var r = section(root, "platform") else { return nil }
        var p = PlatformConfig(url: "", secondaryURL: nil, caFile: nil, pins: [], clientCert: nil, clientKey: nil,
                               heartbeat: .seconds(60), connectTimeout: .seconds(10), acknowledgeWithin: .seconds(60))
        if let (url, at) = r.string("url", required: true, &self) {
            checkURL(url, at: at)
            p.url = url
        }
        if let (url, at) = r.string("secondary_url", required: false, &self) {
            checkURL(url, at: at)
            p.secondaryURL = url
        }
        for (key, keyPath) in [("ca_file", \PlatformConfig.caFile), ("client_cert", \.clientCert), ("client_key", \.clientKey)] {
            if let (path, at) = r.string(key, required: false, &self) {
                checkAbsolutePath(path, at: at, key: key)
                p[keyPath: keyPath] = path
                locations["platform.\(key)"] = at
            }
        }
        if (p.clientCert == nil) != (p.clientKey == nil) {
            error(r.table.location, "client_cert and client_key go together",
                  hint: "set both for mutual TLS (the hub's identity), or neither")
        }
        if let (pins, at) = r.stringList("pins", &self) {
            for pin in pins where !ConfigDecoder.isPin(pin) {
                error(at, "pin \"\(pin)\" is not an SPKI pin",
                      hint: "write \"sha256//\" followed by the 44-character base64 SHA-256 of the public key; see the README for the openssl command")
            }
            p.pins = pins
        }
        if let (d, at) = r.duration("heartbeat", &self) {
            if d < .seconds(30) || d > .seconds(3600) {
                error(at, "heartbeat \(DurationText.format(d)) is outside 30s-1h", hint: "the platform expects 30s to 1h; the default is \"60s\"")
            } else {
                p.heartbeat = d
            }
        }
        if let (d, at) = r.duration("connect_timeout", &self) {
            if d < .seconds(1) || d > .seconds(120) {
                error(at, "connect_timeout \(DurationText.format(d)) is outside 1s-2m", hint: "the default is \"10s\"")
            } else {
                p.connectTimeout = d
            }
        }
        if let (d, at) = r.duration("acknowledge_within", &self) {
            if d < .seconds(10) || d > .seconds(3600) {
                error(at, "acknowledge_within \(DurationText.format(d)) is outside 10s-1h", hint: "how long an operator may take before the hub escalates; the default is \"60s\"")
            } else {
                p.acknowledgeWithin = d
            }
        }
        r.finish(allowed: ["url", "secondary_url", "ca_file", "pins", "client_cert", "client_key", "heartbeat", "connect_timeout", "acknowledge_within"], &self)
        return p
    }

    mutating func checkURL(_ url: String, at: SourceLocation) {
        guard url.hasPrefix("https://"), url.count > 8, !url.contains(" ") else {
            error(at, "\"\(url)\" is not an https:// URL", hint: "events are only sent over TLS; write e.g. \"https://platform.example.no\"")
            return
        }
    }

    static func isPin(_ pin: String) -> Bool {
        guard pin.hasPrefix("sha256//") else { return false }
        let b64 = pin.dropFirst(8)
        return b64.count == 44 && b64.hasSuffix("=")
            && b64.dropLast().allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "/") }
    }

    mutating func checkAbsolutePath(_ path: String, at: SourceLocation, key: String) {
        if !path.hasPrefix("/") {
            error(at, "\(key) \"\(path)\" is not an absolute path", hint: "write the full path, e.g. \"/etc/vaktpost/\(key == "ca_file" ? "platform-ca.pem" : "hub.pem")\"")
        }
    }

    // MARK: [[sensors]]

    static let sensorKeys = ["id", "role", "room", "supervision", "battery_low", "debounce", "transport", "address", "field", "bthome_key", "sender", "eep"]
    static let bleKeys = ["address", "field", "bthome_key"]
    static let enoceanKeys = ["sender", "eep"]
    /// BTHome fields that can drive a sensor's role (research/ble.md §2.2).
    public static let bthomeFields = ["opening", "door", "window", "garage_door", "occupancy", "presence", "motion", "moving", "button", "generic"]
    /// EnOcean profiles the agent decodes (research/serial.md).
    public static let eeps = ["F6-02-01", "F6-02-02", "D5-00-01", "A5-07-01", "A5-07-02", "A5-07-03", "A5-08-01"]

    mutating func decodeSensors(_ root: TOMLTable) -> [SensorConfig] {
        var sensors: [SensorConfig] = []
        var seen: [SensorID: SourceLocation] = [:]
        for (index, (table, location)) in sectionList(root, "sensors").enumerated() {
            var r = TableReader(table: table, context: "[[sensors]] #\(index + 1)", path: "sensors.\(index + 1)")
            var id: SensorID? = nil
            if let (text, at) = r.string("id", required: true, &self) {
                if let sid = SensorID(text) {
                    if let first = seen[sid] {
                        error(at, "sensor id \"\(text)\" is used twice (first on line \(first.line))", hint: "give each sensor its own id")
                    } else {
                        seen[sid] = at
                        id = sid
                        r.context = "sensor \"\(text)\""
                        r.path = "sensors.\(text)"
                        locations["sensors.\(text)"] = at
                    }
                } else {
                    error(at, "sensor id \"\(text)\" is not allowed", hint: SensorID.hint)
                }
            }
            let role: SensorRole? = r.choice("role", required: true, SensorRole.self, &self)
            let room: Room? = r.choice("room", required: true, Room.self, &self)
            let supervision = r.duration("supervision", &self)
            if let (d, at) = supervision, d <= .zero {
                error(at, "supervision must be longer than 0s", hint: "leave it out to not supervise the sensor, or write e.g. \"2h\"")
            }
            var batteryLow = 20
            if let (v, at) = r.integer("battery_low", &self) {
                if (1...95).contains(v) { batteryLow = Int(v) } else {
                    error(at, "battery_low \(v) is outside 1-95 percent", hint: "the default is 20; it clears again at battery_low + 5")
                }
            }
            let debounce = r.duration("debounce", &self)?.0 ?? .zero
            let transport: Transport? = r.choice("transport", required: false, Transport.self, &self)
            var bleBinding: BLEBinding? = nil
            var enoceanBinding: EnOceanBinding? = nil
            switch transport {
            case .ble?:
                bleBinding = decodeBLEBinding(&r)
                r.forbid(ConfigDecoder.enoceanKeys, because: "it belongs to transport = \"enocean\"", &self)
            case .enocean?:
                enoceanBinding = decodeEnOceanBinding(&r)
                r.forbid(ConfigDecoder.bleKeys, because: "it belongs to transport = \"ble\"", &self)
            case nil:
                let bound = (ConfigDecoder.bleKeys + ConfigDecoder.enoceanKeys).filter { table[$0] != nil }
                if let first = bound.first, let node = table[first] {
                    error(node.keyLocation, "'\(first)' is set but the sensor has no transport",
                          hint: "add transport = \"\(ConfigDecoder.bleKeys.contains(first) ? "ble" : "enocean")\"")
                    r.markUsed(bound)
                } else if scope == .agent, id != nil {
                    warning(location, "\(r.context) has no transport, so the agent will not hear it",
                            hint: "add transport = \"ble\" or \"enocean\" with its address; without one it only works in `vaktpost replay`")
                }
            }
            r.finish(allowed: ConfigDecoder.sensorKeys, &self)
            if let id, let role, let room {
                sensors.append(SensorConfig(
                    id: id, role: role, room: room, supervision: supervision?.0, batteryLow: batteryLow, debounce: debounce,
                    transport: transport, ble: bleBinding, enocean: enoceanBinding))
            }
        }
        return sensors
    }

    mutating func decodeBLEBinding(_ r: inout TableReader) -> BLEBinding? {
        var binding = BLEBinding(address: "", field: "", bthomeKey: nil)
        var ok = true
        if let (address, at) = r.string("address", required: true, &self) {
            if let normal = HCI.canonicalAddress(address) { binding.address = normal } else {
                error(at, "\"\(address)\" is not a Bluetooth address", hint: "write six hex pairs with colons, e.g. \"3C:2E:F5:12:34:56\" (`vaktpost scan --ble` shows them)")
                ok = false
            }
        } else { ok = false }
        if let (field, at) = r.string("field", required: true, &self) {
            if ConfigDecoder.bthomeFields.contains(field) { binding.field = field } else {
                var hint = "one of " + ConfigDecoder.bthomeFields.joined(separator: ", ")
                if let s = ConfigReader.suggestion(for: field, among: ConfigDecoder.bthomeFields) { hint = "did you mean \"\(s)\"? It is " + hint }
                error(at, "\"\(field)\" is not a BTHome field the agent can follow", hint: hint)
                ok = false
            }
        } else { ok = false }
        if let (key, at) = r.string("bthome_key", required: false, &self) {
            locations["\(r.path).bthome_key"] = at
            if let bytes = Hex.bytes(key), bytes.count == 16 { binding.bthomeKey = bytes } else {
                error(at, "bthome_key must be 32 hex digits (the sensor's AES-128 key)", hint: "copy the key from the sensor's app; it looks like \"231d39c1d7cc1ab1aee224cd096db932\"")
                ok = false
            }
        }
        return ok ? binding : nil
    }

    mutating func decodeEnOceanBinding(_ r: inout TableReader) -> EnOceanBinding? {
        var binding = EnOceanBinding(sender: "", eep: "")
        var ok = true
        if let (sender, at) = r.string("sender", required: true, &self) {
            if let bytes = Hex.bytes(sender), bytes.count == 4 { binding.sender = sender.uppercased() } else {
                error(at, "sender \"\(sender)\" is not an EnOcean id", hint: "write the 8 hex digits printed on the sensor, e.g. \"01825DAB\" (`vaktpost scan --serial` shows them)")
                ok = false
            }
        } else { ok = false }
        if let (eep, at) = r.string("eep", required: true, &self) {
            if ConfigDecoder.eeps.contains(eep.uppercased()) { binding.eep = eep.uppercased() } else {
                error(at, "EEP \"\(eep)\" is not one the agent decodes", hint: "one of " + ConfigDecoder.eeps.joined(separator: ", "))
                ok = false
            }
        } else { ok = false }
        return ok ? binding : nil
    }

    // MARK: [[rules]]

    static let ruleParams: [RuleKind: [String]] = [
        .notBackInBed: ["sensor", "window", "after"],
        .notUpBy: ["sensor", "at"],
        .doorAtNight: ["sensor", "window"],
        .doorLeftOpen: ["sensor", "after"],
        .fall: ["sensor"],
        .button: ["sensor"],
        .inactivity: ["sensors", "window", "after"],
    ]

    static let ruleRoles: [RuleKind: [SensorRole]] = [
        .notBackInBed: [.bed], .notUpBy: [.bed], .doorAtNight: [.door], .doorLeftOpen: [.door],
        .fall: [.fall], .button: [.button, .fall], .inactivity: SensorRole.allCases,
    ]

    mutating func decodeRules(_ root: TOMLTable, sensors: [SensorConfig]) -> [RuleConfig] {
        var rules: [RuleConfig] = []
        var seen: [String: SourceLocation] = [:]
        let sensorIDs = sensors.map(\.id.rawValue)
        for (index, (table, location)) in sectionList(root, "rules").enumerated() {
            var r = TableReader(table: table, context: "[[rules]] #\(index + 1)", path: "rules.\(index + 1)")
            var id: String? = nil
            if let (text, at) = r.string("id", required: true, &self) {
                if SensorID(text) == nil {
                    error(at, "rule id \"\(text)\" is not allowed", hint: "use lower-case letters, digits and '-', e.g. \"night-bed\"")
                } else if let first = seen[text] {
                    error(at, "rule id \"\(text)\" is used twice (first on line \(first.line))", hint: "give each rule its own id")
                } else {
                    seen[text] = at
                    id = text
                    r.context = "rule \"\(text)\""
                }
            }
            guard let kind: RuleKind = r.choice("kind", required: true, RuleKind.self, &self) else {
                r.markUsed(ConfigDecoder.ruleParams.values.flatMap { $0 })
                r.finish(allowed: ["id", "kind"], &self)
                continue
            }
            let params = ConfigDecoder.ruleParams[kind]!
            let roles = ConfigDecoder.ruleRoles[kind]!
            var rule = RuleConfig(id: id ?? "", kind: kind, sensors: [], window: nil, after: nil, at: nil)
            var ok = id != nil

            func resolve(_ text: String, at: SourceLocation, _ d: inout ConfigDecoder) -> SensorID? {
                guard let sensor = sensors.first(where: { $0.id.rawValue == text }) else {
                    var hint = sensorIDs.isEmpty ? "define the sensor in a [[sensors]] section first" : "configured sensors: " + sensorIDs.joined(separator: ", ")
                    if let s = ConfigReader.suggestion(for: text, among: sensorIDs) { hint = "did you mean \"\(s)\"?" }
                    d.error(at, "\(r.context) names sensor \"\(text)\", which is not configured", hint: hint)
                    return nil
                }
                guard roles.contains(sensor.role) else {
                    d.error(at, "\(r.context) (\(kind.rawValue)) needs a \(roles.map(\.rawValue).joined(separator: " or ")) sensor, but \"\(text)\" has role \(sensor.role.rawValue)",
                            hint: "point the rule at a sensor of the right role, or change the rule kind")
                    return nil
                }
                return sensor.id
            }

            if params.contains("sensor") {
                if let (text, at) = r.string("sensor", required: true, &self) {
                    if let s = resolve(text, at: at, &self) { rule.sensors = [s] } else { ok = false }
                } else { ok = false }
            }
            if params.contains("sensors") {
                if let (list, at) = r.stringList("sensors", &self) {
                    if list.isEmpty { error(at, "\(r.context) lists no sensors", hint: "write sensors = [\"bed\", \"front-door\"]") }
                    for text in list {
                        if let s = resolve(text, at: at, &self) { rule.sensors.append(s) } else { ok = false }
                    }
                    ok = ok && !list.isEmpty
                } else {
                    error(r.table.location, "\(r.context) needs 'sensors'", hint: "write sensors = [\"bed\", \"front-door\"]")
                    ok = false
                }
            }
            if params.contains("window") {
                if let (text, at) = r.string("window", required: true, &self) {
                    switch DailyWindow.parse(text) {
                    case .success(let w): rule.window = w
                    case .failure(let e):
                        error(at, "window \"\(text)\": \(e.problem)", hint: e.hint)
                        ok = false
                    }
                } else { ok = false }
            }
            if params.contains("after") {
                if let (d, at) = r.duration("after", &self, required: true) {
                    if d <= .zero {
                        error(at, "after must be longer than 0s", hint: "e.g. \"30m\"")
                        ok = false
                    } else {
                        rule.after = d
                        if let w = rule.window, d >= w.nominalLength {
                            warning(at, "after \(DurationText.format(d)) is as long as the window \(w), so \(r.context) can never fire",
                                    hint: "shorten 'after' or widen the window")
                        }
                    }
                } else { ok = false }
            }
            if params.contains("at") {
                if let (text, at) = r.string("at", required: true, &self) {
                    switch TimeOfDay.parse(text) {
                    case .success(let t): rule.at = t
                    case .failure(let e):
                        error(at, "at \"\(text)\": \(e.problem)", hint: e.hint)
                        ok = false
                    }
                } else { ok = false }
            }
            let others = Set(ConfigDecoder.ruleParams.values.flatMap { $0 }).subtracting(params).sorted()
            r.forbid(others, because: "\(kind.rawValue) rules take only \(params.joined(separator: ", "))", &self)
            r.finish(allowed: ["id", "kind"] + params, &self)
            _ = location
            if ok { rules.append(rule) }
        }
        return rules
    }

    // MARK: [outbox], [ble], [[serial]]

    mutating func decodeOutbox(_ root: TOMLTable, default d: OutboxConfig) -> OutboxConfig {
        guard var r = section(root, "outbox") else { return d }
        var o = d
        if let (path, at) = r.string("path", required: false, &self) {
            checkAbsolutePath(path, at: at, key: "path")
            o.path = path
            locations["outbox.path"] = at
        }
        if let (bytes, at) = r.size("max_bytes", &self) {
            if bytes < 1 << 20 { error(at, "max_bytes is below 1 MiB", hint: "the default is \"64MiB\"; alarms are never evicted, so keep room for a long outage") } else { o.maxBytes = bytes }
        }
        if let (rows, at) = r.integer("max_rows", &self) {
            if rows < 1000 || rows > 100_000_000 { error(at, "max_rows \(rows) is outside 1000-100000000", hint: "the default is 200000") } else { o.maxRows = Int(rows) }
        }
        r.finish(allowed: ["path", "max_bytes", "max_rows"], &self)
        return o
    }

    mutating func decodeBLE(_ root: TOMLTable, default d: BLEConfig) -> BLEConfig {
        guard var r = section(root, "ble") else { return d }
        var b = d
        if let (adapter, at) = r.string("adapter", required: false, &self) {
            if adapter.hasPrefix("hci"), let n = Int(adapter.dropFirst(3)), n >= 0 { b.adapter = adapter } else {
                error(at, "adapter \"\(adapter)\" is not an HCI device name", hint: "write e.g. \"hci0\" (`ls /sys/class/bluetooth` lists them)")
            }
        }
        if let mode: BLEMode = r.choice("mode", required: false, BLEMode.self, &self) { b.mode = mode }
        if let (path, at) = r.string("replay", required: false, &self) {
            checkAbsolutePath(path, at: at, key: "replay")
            b.replay = path
            locations["ble.replay"] = at
        }
        if let (dur, at) = r.duration("silent_after", &self) {
            if dur < .seconds(5) { error(at, "silent_after below 5s would restart the scan between adverts", hint: "the default is \"60s\"") } else { b.silentAfter = dur }
        }
        r.finish(allowed: ["adapter", "mode", "replay", "silent_after"], &self)
        return b
    }

    static let baudRates = [9600, 19200, 38400, 57600, 115200, 230400, 460800]

    mutating func decodeSerial(_ root: TOMLTable) -> [SerialConfig] {
        var out: [SerialConfig] = []
        var names: Set<String> = []
        for (index, (table, location)) in sectionList(root, "serial").enumerated() {
            var r = TableReader(table: table, context: "[[serial]] #\(index + 1)", path: "serial.\(index + 1)")
            var s = SerialConfig(name: "", path: nil, match: nil, baud: 57600, pingAfter: .seconds(60))
            if let (name, at) = r.string("name", required: true, &self) {
                if SensorID(name) == nil { error(at, "receiver name \"\(name)\" is not allowed", hint: "use lower-case letters, digits and '-', e.g. \"usb300\"; it becomes /dev/vaktpost/<name>") }
                else if !names.insert(name).inserted { error(at, "receiver name \"\(name)\" is used twice") }
                s.name = name
                r.context = "receiver \"\(name)\""
            }
            if let (path, at) = r.string("path", required: false, &self) {
                checkAbsolutePath(path, at: at, key: "path")
                s.path = path
            }
            if let node = table["match"] {
                r.markUsed(["match"])
                if case .table(let t) = node.value {
                    var m = TableReader(table: t, context: "\(r.context) match", path: "\(r.path).match")
                    var match = SerialMatch()
                    for key in ["vendor", "model"] {
                        if let (v, at) = m.string(key, required: false, &self) {
                            if v.utf8.count == 4, Hex.isDigits(v) {
                                if key == "vendor" { match.vendor = v.lowercased() } else { match.model = v.lowercased() }
                            } else {
                                error(at, "\(key) \"\(v)\" is not a USB id", hint: "write the 4 hex digits `udevadm info` shows as ID_\(key.uppercased())_ID, e.g. \"0403\"")
                            }
                        }
                    }
                    match.serial = m.string("serial", required: false, &self)?.0
                    m.finish(allowed: ["vendor", "model", "serial"], &self)
                    if match == SerialMatch() { error(node.location, "match names nothing", hint: "write match = { vendor = \"0403\", model = \"6001\" }") }
                    s.match = match
                } else {
                    error(node.location, "match must be a table", hint: "write match = { vendor = \"0403\", model = \"6001\" }")
                }
            }
            if s.path != nil && s.match != nil {
                error(location, "\(r.context) has both path and match", hint: "use match (survives re-plugging into another port) or path, not both")
            } else if s.path == nil && s.match == nil {
                error(location, "\(r.context) has neither path nor match", hint: "write match = { vendor = \"0403\", model = \"6001\" } or path = \"/dev/ttyUSB0\"")
            }
            if let (baud, at) = r.integer("baud", &self) {
                if ConfigDecoder.baudRates.contains(Int(baud)) { s.baud = Int(baud) } else {
                    error(at, "baud \(baud) is not a standard rate", hint: "EnOcean ESP3 receivers use 57600; others: " + ConfigDecoder.baudRates.map(String.init).joined(separator: ", "))
                }
            }
            if let (d, at) = r.duration("ping_after", &self) {
                if d < .seconds(5) { error(at, "ping_after below 5s would ping between normal telegrams", hint: "the default is \"60s\"") } else { s.pingAfter = d }
            }
            r.finish(allowed: ["name", "path", "match", "baud", "ping_after"], &self)
            out.append(s)
        }
        return out
    }

    /// A fall detector or alarm button with no rule raises nothing when it fires: almost always a
    /// forgotten [[rules]] section, and the kind of silent gap this agent exists to close.
    mutating func warnAboutSensorsNoRuleWatches(sensors: [SensorConfig], rules: [RuleConfig], root: TOMLTable) {
        for sensor in sensors where sensor.role == .fall || sensor.role == .button {
            let watched = rules.contains { ($0.kind == .fall || $0.kind == .button) && $0.sensors.contains(sensor.id) }
            if !watched {
                warning(locations["sensors.\(sensor.id)"], "sensor \"\(sensor.id)\" (\(sensor.role.rawValue)) has no rule, so it raises no alarm",
                        hint: "add [[rules]] with kind = \"\(sensor.role.rawValue)\" and sensor = \"\(sensor.id)\"")
            }
        }
    }

    mutating func crossCheckTransports(sensors: [SensorConfig], serial: [SerialConfig], root: TOMLTable) {
        if serial.isEmpty, let s = sensors.first(where: { $0.transport == .enocean }) {
            warning(root["sensors"]?.keyLocation, "sensor \"\(s.id)\" uses EnOcean but no [[serial]] receiver is configured",
                    hint: "add [[serial]] with name = \"usb300\" and match = { vendor = \"0403\", model = \"6001\" }")
        }
    }
}

/// Typed access to one table's keys with diagnostics for wrong types and unknown keys.
private struct TableReader {
    let table: TOMLTable
    var context: String
    var path: String
    var used: Set<String> = []

    init(table: TOMLTable, context: String, path: String) {
        self.table = table
        self.context = context
        self.path = path
    }

    mutating func markUsed(_ keys: [String]) { used.formUnion(keys) }

    mutating func node(_ key: String, required: Bool, _ d: inout ConfigDecoder, example: String) -> TOMLNode? {
        used.insert(key)
        guard let node = table[key] else {
            // A misspelling of this key is reported by finish() as "did you mean"; one error is enough.
            let misspelled = table.keys.contains { $0 != key && ConfigReader.suggestion(for: $0, among: [key]) != nil }
            if required && !misspelled { d.error(table.location, "\(context) is missing '\(key)'", hint: "add \(key) = \(example)") }
            return nil
        }
        return node
    }

    mutating func string(_ key: String, required: Bool, _ d: inout ConfigDecoder, example: String = "\"...\"") -> (String, SourceLocation)? {
        guard let node = node(key, required: required, &d, example: example) else { return nil }
        guard case .string(let s) = node.value else {
            d.error(node.location, "\(key) must be text in quotes, not \(node.value.kindName)", hint: "write \(key) = \"...\"")
            return nil
        }
        d.locations["\(path).\(key)"] = node.location
        return (s, node.location)
    }

    mutating func stringList(_ key: String, _ d: inout ConfigDecoder) -> ([String], SourceLocation)? {
        guard let node = node(key, required: false, &d, example: "[]") else { return nil }
        guard case .array(let items) = node.value else {
            d.error(node.location, "\(key) must be a list in brackets, not \(node.value.kindName)", hint: "write \(key) = [\"...\", \"...\"]")
            return nil
        }
        var out: [String] = []
        for item in items {
            guard case .string(let s) = item.value else {
                d.error(item.location, "each entry of \(key) must be text in quotes", hint: "write \(key) = [\"...\", \"...\"]")
                return nil
            }
            out.append(s)
        }
        return (out, node.location)
    }

    mutating func integer(_ key: String, _ d: inout ConfigDecoder) -> (Int64, SourceLocation)? {
        guard let node = node(key, required: false, &d, example: "0") else { return nil }
        guard case .integer(let v) = node.value else {
            d.error(node.location, "\(key) must be a whole number without quotes, not \(node.value.kindName)", hint: "write e.g. \(key) = 20")
            return nil
        }
        return (v, node.location)
    }

    mutating func duration(_ key: String, _ d: inout ConfigDecoder, required: Bool = false) -> (Duration, SourceLocation)? {
        guard let node = node(key, required: required, &d, example: "\"30m\"") else { return nil }
        guard case .string(let s) = node.value else {
            d.error(node.location, "\(key) must be a duration in quotes, not \(node.value.kindName)", hint: DurationText.hint)
            return nil
        }
        switch DurationText.parse(s) {
        case .success(let v): return (v, node.location)
        case .failure(let e):
            d.error(node.location, "\(key): \(e.problem)", hint: e.hint)
            return nil
        }
    }

    /// Bytes as an integer or as text with a binary unit: `67108864`, `"64MiB"`, `"1GiB"`.
    mutating func size(_ key: String, _ d: inout ConfigDecoder) -> (Int64, SourceLocation)? {
        guard let node = node(key, required: false, &d, example: "\"64MiB\"") else { return nil }
        let hint = "write a size such as \"64MiB\" or \"1GiB\" (KiB, MiB, GiB), or a number of bytes"
        switch node.value {
        case .integer(let v): return (v, node.location)
        case .string(let s):
            for (unit, shift) in [("KiB", 10), ("MiB", 20), ("GiB", 30)] where s.hasSuffix(unit) {
                if let n = Int64(s.dropLast(3)), n > 0, n < 1 << 20 { return (n << shift, node.location) }
            }
            d.error(node.location, "\(key) \"\(s)\" is not a size", hint: hint)
        default:
            d.error(node.location, "\(key) must be a size, not \(node.value.kindName)", hint: hint)
        }
        return nil
    }

    mutating func choice<T: RawRepresentable & CaseIterable>(_ key: String, required: Bool, _ type: T.Type, _ d: inout ConfigDecoder) -> T? where T.RawValue == String {
        let options = T.allCases.map(\.rawValue)
        let example = "\"\(options[0])\" (one of \(options.joined(separator: ", ")))"
        guard let (text, at) = string(key, required: required, &d, example: example) else { return nil }
        if let v = T(rawValue: text) { return v }
        var hint = "one of " + options.joined(separator: ", ")
        if let s = ConfigReader.suggestion(for: text, among: options) { hint = "did you mean \"\(s)\"? It is " + hint }
        d.error(at, "\(key) \"\(text)\" is not known", hint: hint)
        return nil
    }

    /// Keys that are recognised elsewhere but wrong here.
    mutating func forbid(_ keys: [String], because reason: String, _ d: inout ConfigDecoder) {
        for key in keys {
            guard let node = table[key] else { continue }
            used.insert(key)
            d.error(node.keyLocation, "\(context) sets '\(key)', but \(reason)", hint: "remove '\(key)'")
        }
    }

    func finish(allowed: [String], _ d: inout ConfigDecoder) {
        for (key, node) in table.nodes where !allowed.contains(key) && !used.contains(key) {
            var hint = "the keys here are " + allowed.joined(separator: ", ")
            if let s = ConfigReader.suggestion(for: key, among: allowed) { hint = "did you mean '\(s)'?" }
            d.error(node.keyLocation, "unknown key '\(key)' in \(context)", hint: hint)
        }
    }
}
