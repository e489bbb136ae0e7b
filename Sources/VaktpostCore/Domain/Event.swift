/// What kind of thing an event reports. The class decides the lane and what the platform does with it.
public enum EventClass: String, CaseIterable, Sendable {
    /// Someone may need help: not back in bed, fall, button, door at night.
    case alarm
    /// Something in the chain is broken: battery, silent sensor, receiver unplugged, link lost.
    case technical
    /// A sensor changed state (bed occupied, door closed): the operator's timeline.
    case state
    /// The periodic alarm test, sent end to end through the alarm lane.
    case test
    /// Diagnostics of the agent itself.
    case log

    public var lane: Lane {
        switch self {
        case .alarm, .technical, .test: return .alarm
        case .state, .log: return .bulk
        }
    }
}

/// The two outbox lanes. The alarm lane is never made to wait behind the bulk backlog.
public enum Lane: String, CaseIterable, Sendable {
    case alarm
    case bulk
}

/// Where an event stands in its life: raised, ended by the condition going away, withdrawn, or updated.
public enum EventState: String, CaseIterable, Sendable {
    case active
    case cleared
    case cancelled
    case update
}

/// 0 (lowest) to 9 (highest), as SCAIP's `pri`.
public struct Priority: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let value: Int

    public init(_ value: Int) {
        precondition((0...9).contains(value), "priority \(value) is outside 0...9")
        self.value = value
    }

    public static func < (a: Priority, b: Priority) -> Bool { a.value < b.value }
    public var description: String { String(value) }
}

/// When an event happened, stamped three ways so the platform can order and correct it:
/// the wall clock with the offset in force, the boot clock that never jumps, and whether the
/// wall clock was synchronised at the time (research/uplink.md §3.9).
public struct EventTime: Hashable, Sendable {
    public var wall: WallTime
    public var utcOffsetSeconds: Int
    /// `CLOCK_BOOTTIME` in nanoseconds: monotonic, counts suspend, resets at boot.
    public var boottimeNanoseconds: UInt64
    /// `/proc/sys/kernel/random/boot_id`: which boot `boottimeNanoseconds` belongs to.
    public var bootID: String
    public var clockSynced: Bool

    public init(wall: WallTime, utcOffsetSeconds: Int, boottimeNanoseconds: UInt64, bootID: String, clockSynced: Bool) {
        self.wall = wall
        self.utcOffsetSeconds = utcOffsetSeconds
        self.boottimeNanoseconds = boottimeNanoseconds
        self.bootID = bootID
        self.clockSynced = clockSynced
    }

    /// `2026-03-29T03:20:00.000+02:00`
    public var rfc3339: String { RFC3339.format(wall, utcOffsetSeconds: utcOffsetSeconds, fractionDigits: 3) }
}

/// SCAIP codes (SS 91100 Annex A/C/D) and VKP codes (vkp-encounter-reason / vkp-alert-code v0.9.0),
/// carried on every event so a gateway to a SCAIP receiver or a journaling step needs no lookup.
public struct EventCodes: Hashable, Sendable {
    public var scaipDeviceType: String
    public var scaipStatus: String?
    public var scaipLocation: String?
    public var vkpReason: String?
    public var vkpAlert: String?

    public init(scaipDeviceType: String, scaipStatus: String?, scaipLocation: String?, vkpReason: String?, vkpAlert: String?) {
        self.scaipDeviceType = scaipDeviceType
        self.scaipStatus = scaipStatus
        self.scaipLocation = scaipLocation
        self.vkpReason = vkpReason
        self.vkpAlert = vkpAlert
    }
}

/// The one record every module after the rule engine forwards: produced by the rules, stored
/// by the outbox, sent by the uplink. Field names follow the uplink schema `hub-event/1`.
public struct Event: Hashable, Sendable {
    public var eventID: EventID
    /// Per-hub sequence number, assigned by the outbox when the event is stored.
    public var seq: UInt64?
    public var eventClass: EventClass
    /// Dotted name: `bed.not_returned`, `sensor.battery_low`.
    public var type: EventType
    public var state: EventState
    /// The `eventID` of the `active` event a `cleared`, `cancelled` or `update` belongs to; its own id otherwise.
    public var correlationID: EventID
    public var priority: Priority
    public var sensor: SensorID?
    public var room: Room?
    /// The rule that raised it, for alarms from rules.
    public var rule: String?
    public var occurredAt: EventTime
    public var codes: EventCodes
    public var data: [(String, JSONValue)]

    public init(
        eventID: EventID, seq: UInt64? = nil, eventClass: EventClass, type: EventType, state: EventState,
        correlationID: EventID, priority: Priority, sensor: SensorID?, room: Room?, rule: String?,
        occurredAt: EventTime, codes: EventCodes, data: [(String, JSONValue)] = []
    ) {
        self.eventID = eventID
        self.seq = seq
        self.eventClass = eventClass
        self.type = type
        self.state = state
        self.correlationID = correlationID
        self.priority = priority
        self.sensor = sensor
        self.room = room
        self.rule = rule
        self.occurredAt = occurredAt
        self.codes = codes
        self.data = data
    }

    public var lane: Lane { eventClass.lane }

    public static func == (a: Event, b: Event) -> Bool {
        a.eventID == b.eventID && a.seq == b.seq && a.eventClass == b.eventClass && a.type == b.type && a.state == b.state
            && a.correlationID == b.correlationID && a.priority == b.priority && a.sensor == b.sensor && a.room == b.room
            && a.rule == b.rule && a.occurredAt == b.occurredAt && a.codes == b.codes
            && JSONValue.object(a.data) == JSONValue.object(b.data)
    }

    public func hash(into h: inout Hasher) { h.combine(eventID) }

    /// The event as the uplink schema `hub-event/1` writes it.
    public var json: JSONValue {
        .object(dropping: [
            ("schema", .string("hub-event/1")),
            ("eventId", .string(eventID.description)),
            ("seq", seq.map { .int(Int64($0)) }),
            ("bootId", .string(occurredAt.bootID)),
            ("class", .string(eventClass.rawValue)),
            ("type", .string(type.rawValue)),
            ("state", .string(state.rawValue)),
            ("correlationId", .string(correlationID.description)),
            ("priority", .int(Int64(priority.value))),
            ("deviceId", sensor.map { .string($0.rawValue) }),
            ("location", room.map { .object([("code", .string($0.scaipLocationCode)), ("text", .string($0.norwegianName))]) }),
            ("rule", rule.map { .object([("id", .string($0))]) }),
            ("occurredAt", .string(occurredAt.rfc3339)),
            (
                "clock",
                .object([
                    ("synced", .bool(occurredAt.clockSynced)),
                    ("boottimeNs", .int(Int64(clamping: occurredAt.boottimeNanoseconds))),
                ])
            ),
            (
                "codes",
                .object([
                    (
                        "scaip",
                        .object(dropping: [
                            ("dty", .string(codes.scaipDeviceType)),
                            ("stc", codes.scaipStatus.map(JSONValue.string)),
                            ("lco", codes.scaipLocation.map(JSONValue.string)),
                        ])
                    ),
                    (
                        "vkp",
                        .object(dropping: [
                            ("reason", codes.vkpReason.map(JSONValue.string)),
                            ("alert", codes.vkpAlert.map(JSONValue.string)),
                        ])
                    ),
                ])
            ),
            ("data", .object(data)),
        ])
    }
}
