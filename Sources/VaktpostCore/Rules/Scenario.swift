/// One line of a replay scenario (`.jsonl`): a reading, a restart of the agent, or the end.
public enum ScenarioStep: Equatable, Sendable {
    case reading(Reading)
    /// The agent restarts here: its rule state goes through the same save and load as in production.
    case restart(at: WallTime)
    /// Run the clock to this time, then stop.
    case end(at: WallTime)

    public var time: WallTime {
        switch self {
        case .reading(let r): return r.receivedAt
        case .restart(let t), .end(let t): return t
        }
    }
}

public struct ScenarioError: Error, Equatable, Sendable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

/// Reads scenario files: one JSON object per line, in time order. Blank lines and lines
/// starting with `#` are skipped, so a fixture can explain itself.
public enum Scenario {
    static let readingKeys = ["occupied", "open", "fall", "pressed", "motion", "battery", "tamper", "rssi"]

    public static func parse(_ text: String, sensors: [SensorID]) -> Result<[(line: Int, step: ScenarioStep)], ScenarioError> {
        var steps: [(Int, ScenarioStep)] = []
        var last: WallTime? = nil
        // isNewline splits CRLF files too: in Swift "\r\n" is one Character, never equal to "\n".
        for (index, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let n = index + 1
            let line = raw.trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            do {
                let step = try parseLine(String(line), sensors: sensors)
                if let last, step.time < last {
                    throw ScenarioError(line: n, message: "time goes backwards: \(RFC3339.format(step.time, utcOffsetSeconds: 0)) is before the line above")
                }
                last = step.time
                steps.append((n, step))
                if case .end = step { break }
            } catch let e as ScenarioError {
                return .failure(ScenarioError(line: n, message: e.message))
            } catch {
                return .failure(ScenarioError(line: n, message: "\(error)"))
            }
        }
        return .success(steps)
    }

    static func parseLine(_ line: String, sensors: [SensorID]) throws -> ScenarioStep {
        func fail(_ m: String) -> ScenarioError { ScenarioError(line: 0, message: m) }
        let json: JSONValue
        do { json = try JSONValue.parse(line) } catch { throw fail("not valid JSON (\(error))") }
        guard let fields = json.objectFields else { throw fail("each line must be a JSON object") }
        guard let atText = json["at"]?.stringValue else { throw fail("missing \"at\" (an RFC 3339 time such as \"2026-03-29T01:50:00+01:00\")") }
        guard let (at, _) = RFC3339.parse(atText) else { throw fail("\"at\": \"\(atText)\" is not an RFC 3339 time with an offset, e.g. \"2026-03-29T01:50:00+01:00\"") }
        let keys = Set(fields.map(\.0))
        if json["restart"] == .bool(true) {
            guard keys == ["at", "restart"] else { throw fail("a restart line has only \"at\" and \"restart\"") }
            return .restart(at: at)
        }
        if json["end"] == .bool(true) {
            guard keys == ["at", "end"] else { throw fail("an end line has only \"at\" and \"end\"") }
            return .end(at: at)
        }
        guard let name = json["sensor"]?.stringValue else {
            throw fail("a line needs \"sensor\" with \"reading\" or \"seen\", or \"restart\": true, or \"end\": true")
        }
        guard let sensor = SensorID(name), sensors.contains(sensor) else {
            throw fail("unknown sensor \"\(name)\"; the config has \(sensors.map { "\"\($0)\"" }.joined(separator: ", "))")
        }
        if let unknown = keys.subtracting(["at", "sensor", "reading", "seen"]).sorted().first {
            throw fail("unknown key \"\(unknown)\"")
        }
        if json["seen"] != nil {
            guard json["seen"] == .bool(true), json["reading"] == nil else { throw fail("\"seen\" must be true and stands without \"reading\"") }
            return .reading(Reading(sensor: sensor, receivedAt: at, values: ReadingValues()))
        }
        guard let readingFields = json["reading"]?.objectFields, !readingFields.isEmpty else {
            throw fail("\"reading\" must be an object with at least one of \(readingKeys.joined(separator: ", "))")
        }
        var v = ReadingValues()
        for (key, value) in readingFields {
            switch key {
            case "occupied", "open", "fall", "pressed", "motion", "tamper":
                guard let b = value.boolValue else { throw fail("reading \"\(key)\" must be true or false") }
                switch key {
                case "occupied": v.occupied = b
                case "open": v.open = b
                case "fall": v.fall = b
                case "pressed": v.pressed = b
                case "motion": v.motion = b
                default: v.tamper = b
                }
            case "battery":
                guard let b = value.intValue, (0...100).contains(b) else { throw fail("reading \"battery\" must be a whole percent 0-100") }
                v.battery = Int(b)
            case "rssi":
                guard let r = value.intValue, (-127...20).contains(r) else { throw fail("reading \"rssi\" must be dBm, -127 to 20") }
                v.rssi = Int(r)
            default:
                throw fail("unknown reading key \"\(key)\"; use \(readingKeys.joined(separator: ", "))")
            }
        }
        return .reading(Reading(sensor: sensor, receivedAt: at, values: v))
    }

    /// One output line of `vaktpost replay`: the event as the technician reads it.
    public static func outputLine(_ e: Event, zone: TimeZoneRules) -> String {
        JSONValue.object([
            ("at", .string(zone.format(e.occurredAt.wall))),
            ("class", .string(e.eventClass.rawValue)),
            ("type", .string(e.type.rawValue)),
            ("state", .string(e.state.rawValue)),
            ("sensor", e.sensor.map { .string($0.rawValue) } ?? .null),
            ("rule", e.rule.map(JSONValue.string) ?? .null),
            ("correlationId", .string(e.correlationID.description)),
            ("eventId", .string(e.eventID.description)),
            ("priority", .int(Int64(e.priority.value))),
            ("data", .object(e.data)),
        ]).serialized
    }
}

/// SplitMix64: a small, fast generator with a fixed sequence per seed, for reproducible replays.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
