/// The readings that have a lasting state, as opposed to momentary events (fall, button).
public enum Channel: String, CaseIterable, Sendable, Comparable {
    case occupied
    case open
    case motion

    public static func < (a: Channel, b: Channel) -> Bool { a.rawValue < b.rawValue }

    /// The state event a confirmed change on this channel produces.
    var stateEvent: EventType {
        switch self {
        case .occupied: return .bedState
        case .open: return .doorState
        case .motion: return .motionState
        }
    }

    /// SCAIP status for the new state (SS 91100 Annex C).
    func scaipStatus(_ value: Bool) -> String {
        switch self {
        case .occupied: return value ? "0117" : "0003"  // lying in bed / absent
        case .open: return value ? "0076" : "0021"  // open / closed
        case .motion: return value ? "0119" : "0070"  // movement / normal state
        }
    }

    func value(in r: ReadingValues) -> Bool? {
        switch self {
        case .occupied: return r.occupied
        case .open: return r.open
        case .motion: return r.motion
        }
    }
}

/// Everything the rule engine remembers between inputs. It is a plain value: saved after every
/// step together with the events that step produced, and restored after a restart, so a timer
/// armed before a restart fires once, on time, after it.
public struct EngineState: Equatable, Sendable {
    /// When the engine first ran; the baseline for sensors never heard since.
    public internal(set) var startedAt: WallTime?
    /// The latest time the engine has been advanced to.
    public internal(set) var now: WallTime?
    var sensors: [SensorID: SensorState] = [:]
    var rules: [String: RuleState] = [:]

    public init() {}
}

struct ChannelState: Equatable, Sendable {
    /// The confirmed state; nil until the first reading.
    var stable: Bool?
    /// When the confirmed state began: the first reading of it.
    var changedAt: WallTime?
    /// A different state seen but not yet held for the debounce time.
    var pending: Bool?
    var pendingSince: WallTime?
    /// `stable` is the sensor's first reading, not a confirmed change: what the rules of a
    /// stand-in that started afresh knew before anything changed (`RuleEngine.takeIn`).
    var firstReading = false
}

struct SensorState: Equatable, Sendable {
    var lastHeard: WallTime?
    /// Last confirmed state change or momentary event: what `inactivity` measures from.
    var lastActivity: WallTime?
    var channels: [Channel: ChannelState] = [:]
    /// Event ids of the open technical conditions (their `active` event), used as correlation ids.
    var silent: EventID?
    var batteryLow: EventID?
    var tamper: EventID?
    /// Packets refused since the last one taken (`RuleEngine.refused`); nil while none are.
    var refusal: RefusedRun?
    var battery: Int?
}

/// One run of refused packets of a sensor: raised as `sensor.refused`, or waiting to be.
struct RefusedRun: Equatable, Sendable {
    /// The open `sensor.refused`; nil while it waits (`pendingSince`).
    var event: EventID?
    /// The first refused packet, when a packet was taken shortly before it: raised only if
    /// none is taken for `RuleEngine.refusalQuiet` after it.
    var pendingSince: WallTime?
    var reason: String
    var last: WallTime
    var packets: Int
}

struct RuleState: Equatable, Sendable {
    /// The open alarm's event id.
    var active: EventID?
    var activeType: String?
    /// A timer: when the alarm is due if nothing changes (not-back-in-bed, door-left-open).
    var deadline: WallTime?
    /// The daily check time (not-up-by).
    var nextCheck: WallTime?
}

// MARK: Saving and restoring

extension EngineState {
    public static let formatVersion: Int64 = 1

    /// The state as one JSON object, for the snapshot file or the outbox's rule-state row.
    public var json: JSONValue {
        func t(_ w: WallTime?) -> JSONValue? { w.map { .int($0.nanosecondsSinceEpoch) } }
        func id(_ e: EventID?) -> JSONValue? { e.map { .string($0.description) } }
        return .object(dropping: [
            ("version", .int(EngineState.formatVersion)),
            ("startedAt", t(startedAt)),
            ("now", t(now)),
            ("sensors", .object(sensors.sorted { $0.key < $1.key }.map { key, s in
                (key.rawValue, .object(dropping: [
                    ("lastHeard", t(s.lastHeard)),
                    ("lastActivity", t(s.lastActivity)),
                    ("silent", id(s.silent)),
                    ("batteryLow", id(s.batteryLow)),
                    ("tamper", id(s.tamper)),
                    ("refusal", s.refusal.map { r in .object(dropping: [
                        ("event", id(r.event)), ("pendingSince", t(r.pendingSince)), ("reason", .string(r.reason)),
                        ("last", t(r.last)), ("packets", .int(Int64(r.packets))),
                    ]) }),
                    ("battery", s.battery.map { .int(Int64($0)) }),
                    ("channels", .object(s.channels.sorted { $0.key < $1.key }.map { ch, c in
                        (ch.rawValue, .object(dropping: [
                            ("stable", c.stable.map(JSONValue.bool)),
                            ("changedAt", t(c.changedAt)),
                            ("pending", c.pending.map(JSONValue.bool)),
                            ("pendingSince", t(c.pendingSince)),
                            ("firstReading", c.firstReading ? .bool(true) : nil),
                        ]))
                    })),
                ]))
            })),
            ("rules", .object(rules.sorted { $0.key < $1.key }.map { key, r in
                (key, .object(dropping: [
                    ("active", id(r.active)),
                    ("activeType", r.activeType.map(JSONValue.string)),
                    ("deadline", t(r.deadline)),
                    ("nextCheck", t(r.nextCheck)),
                ]))
            })),
        ])
    }

    public struct RestoreError: Error, Equatable, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { "saved rule state cannot be read: \(message)" }
    }

    public init(json: JSONValue) throws(RestoreError) {
        func fail(_ m: String) -> RestoreError { RestoreError(message: m) }
        guard json["version"]?.intValue == EngineState.formatVersion else { throw fail("unknown format version") }
        func t(_ v: JSONValue?) throws(RestoreError) -> WallTime? {
            guard let v, v != .null else { return nil }
            guard let n = v.intValue else { throw fail("a time is not an integer") }
            return WallTime(nanosecondsSinceEpoch: n)
        }
        func id(_ v: JSONValue?) throws(RestoreError) -> EventID? {
            guard let v else { return nil }
            guard let s = v.stringValue, let e = EventID(s) else { throw fail("an event id is malformed") }
            return e
        }
        self.init()
        startedAt = try t(json["startedAt"])
        now = try t(json["now"])
        for (key, s) in json["sensors"]?.objectFields ?? [] {
            guard let sensor = SensorID(key) else { throw fail("sensor id \(key)") }
            var state = SensorState()
            state.lastHeard = try t(s["lastHeard"])
            state.lastActivity = try t(s["lastActivity"])
            state.silent = try id(s["silent"])
            state.batteryLow = try id(s["batteryLow"])
            state.tamper = try id(s["tamper"])
            if let r = s["refusal"] {
                guard let reason = r["reason"]?.stringValue, let last = try t(r["last"]), let packets = r["packets"]?.intValue else { throw fail("a refusal is incomplete") }
                state.refusal = RefusedRun(event: try id(r["event"]), pendingSince: try t(r["pendingSince"]), reason: reason, last: last, packets: Int(packets))
            }
            state.battery = s["battery"]?.intValue.map { Int($0) }
            for (name, c) in s["channels"]?.objectFields ?? [] {
                guard let channel = Channel(rawValue: name) else { throw fail("channel \(name)") }
                state.channels[channel] = ChannelState(
                    stable: c["stable"]?.boolValue, changedAt: try t(c["changedAt"]),
                    pending: c["pending"]?.boolValue, pendingSince: try t(c["pendingSince"]),
                    firstReading: c["firstReading"]?.boolValue ?? false)
            }
            sensors[sensor] = state
        }
        for (key, r) in json["rules"]?.objectFields ?? [] {
            rules[key] = RuleState(
                active: try id(r["active"]), activeType: r["activeType"]?.stringValue,
                deadline: try t(r["deadline"]), nextCheck: try t(r["nextCheck"]))
        }
    }
}
