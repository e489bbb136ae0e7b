/// The parts of docs/openapi.yaml beyond delivery, pure: reading an alarm's handling status, the
/// heartbeat's body and reply, the commands and their results, and re-stamping time.

/// How far the response centre has come with an alarm (`GET .../alarms/{eventId}`).
public enum AlarmHandling: String, Sendable, Equatable, Comparable {
    case received, presented, acknowledged, closed

    static let order: [AlarmHandling] = [.received, .presented, .acknowledged, .closed]
    public static func < (a: AlarmHandling, b: AlarmHandling) -> Bool { order.firstIndex(of: a)! < order.firstIndex(of: b)! }

    /// An operator has taken it: the hub stops following.
    public var isTaken: Bool { self >= .acknowledged }

    /// Reads an AlarmStatus body; nil when it is not one.
    public static func parse(_ body: [UInt8]) -> AlarmHandling? {
        guard let json = try? JSONValue.parse(bytes: body) else { return nil }
        return json["status"]?.stringValue.flatMap(AlarmHandling.init(rawValue:))
    }
}

/// What to do about an alarm the platform received but no operator has taken yet.
public enum AlarmFollowUp: Equatable, Sendable {
    case done
    case keepFollowing
    /// Not acknowledged in time: also send it to the secondary platform and raise `alarm.unacknowledged`.
    case escalate(waited: Duration)

    public static func decide(_ status: AlarmHandling, acceptedAt: WallTime, now: WallTime, acknowledgeWithin: Duration, escalated: Bool) -> AlarmFollowUp {
        if status.isTaken { return .done }
        let waited = now - acceptedAt
        return !escalated && waited >= acknowledgeWithin ? .escalate(waited: waited) : .keepFollowing
    }
}

/// The heartbeat body (docs/openapi.yaml Heartbeat): how the hub is, as support staff see it.
public struct HealthSnapshot: Sendable, Equatable {
    public struct SensorHealth: Sendable, Equatable {
        public var deviceID: String
        public var lastSeen: WallTime?
        public var batteryPercent: Int?
        public var rssi: Int?
        public var state: String?
        /// Packets from the sensor refused since it was last heard: a wrong key, a counter that
        /// went back (a replay, or a sensor that restarted its counter). It is not silent, and
        /// not heard either: this says why.
        public var refused: Refusal?
        public init(deviceID: String, lastSeen: WallTime? = nil, batteryPercent: Int? = nil, rssi: Int? = nil, state: String? = nil) {
            self.deviceID = deviceID
            self.lastSeen = lastSeen
            self.batteryPercent = batteryPercent
            self.rssi = rssi
            self.state = state
        }
    }

    /// Why the last refused packet was refused, how many have been since the sensor was last
    /// heard, and since when.
    public struct Refusal: Sendable, Equatable {
        public var reason: String
        public var count: Int
        public var since: WallTime
        public init(reason: String, count: Int, since: WallTime) {
            self.reason = reason
            self.count = count
            self.since = since
        }

        /// `{"reason": ..., "count": N, "since": ...}` with `since` stamped by the caller.
        public func json(since stamped: JSONValue) -> JSONValue {
            .object([("reason", .string(reason)), ("count", .int(Int64(count))), ("since", stamped)])
        }

        /// `REFUSED xN: reason`, from the JSON form: what `vaktpost status` and the reference
        /// receiver's page show where such a sensor's state would be.
        public static func summary(_ json: JSONValue) -> String {
            "REFUSED x\(json["count"]?.intValue ?? 0): \(json["reason"]?.stringValue ?? "")"
        }
    }

    public struct Receiver: Sendable, Equatable {
        public var name: String
        public var present: Bool
        public var version: String?
        public init(name: String, present: Bool, version: String? = nil) {
            self.name = name
            self.present = present
            self.version = version
        }
    }

    public var swVersion: String
    /// The config in use.
    public var configVersion: String?
    /// A config accepted and written but not in use yet: the agent restarts onto it at once,
    /// or, while a write of its outbox hangs, once the outbox writes again.
    public var configPending: String?
    public var uptime: Duration
    public var outboxDepth: Int
    public var oldestQueued: WallTime?
    public var highestSeqQueued: UInt64?
    public var dropped: Int64
    public var clockSynced: Bool
    public var sensors: [SensorHealth]
    public var receivers: [Receiver]
    public var diskFreePercent: Double?

    public init(swVersion: String, configVersion: String? = nil, uptime: Duration = .zero, outboxDepth: Int = 0, oldestQueued: WallTime? = nil,
                highestSeqQueued: UInt64? = nil, dropped: Int64 = 0, clockSynced: Bool = true, sensors: [SensorHealth] = [],
                receivers: [Receiver] = [], diskFreePercent: Double? = nil) {
        self.swVersion = swVersion
        self.configVersion = configVersion
        self.uptime = uptime
        self.outboxDepth = outboxDepth
        self.oldestQueued = oldestQueued
        self.highestSeqQueued = highestSeqQueued
        self.dropped = dropped
        self.clockSynced = clockSynced
        self.sensors = sensors
        self.receivers = receivers
        self.diskFreePercent = diskFreePercent
    }

    /// The Heartbeat document, stamped when it is sent. Times are in the hub's local offset.
    public func heartbeat(hubID: String, bootID: String, boottimeNanoseconds: UInt64, now: WallTime, zone: TimeZoneRules) -> JSONValue {
        func stamp(_ t: WallTime) -> JSONValue { .string(RFC3339.format(t, utcOffsetSeconds: zone.utcOffset(at: t), fractionDigits: 3)) }
        let oldestAge: Int64 = oldestQueued.map { max(0, (now - $0).nanoseconds / 1_000_000_000) } ?? 0
        let outbox: JSONValue = .object(dropping: [
            ("depth", .int(Int64(outboxDepth))), ("oldestAgeS", .int(oldestAge)),
            ("highestSeqQueued", highestSeqQueued.map { .int(Int64(clamping: $0)) }), ("dropped", .int(dropped)),
        ])
        let sensorList: [JSONValue] = sensors.map { s in
            let fields: [(String, JSONValue?)] = [
                ("deviceId", .string(s.deviceID)), ("lastSeenAt", s.lastSeen.map(stamp)), ("batteryPct", s.batteryPercent.map { .int(Int64($0)) }),
                ("rssi", s.rssi.map { .int(Int64($0)) }), ("state", s.state.map { .string($0) }),
                ("refused", s.refused.map { $0.json(since: stamp($0.since)) }),
            ]
            return .object(dropping: fields)
        }
        let receiverList: [JSONValue] = receivers.map { r in
            let fields: [(String, JSONValue?)] = [("name", .string(r.name)), ("present", .bool(r.present)), ("version", r.version.map { .string($0) })]
            return .object(dropping: fields)
        }
        let fields: [(String, JSONValue?)] = [
            ("hubId", .string(hubID)), ("bootId", .string(bootID)), ("boottimeNs", .int(Int64(clamping: boottimeNanoseconds))),
            ("sentAt", stamp(now)), ("swVersion", .string(swVersion)), ("configVersion", configVersion.map { .string($0) }),
            ("configPending", configPending.map { .string($0) }), ("uptimeS", .int(uptime.nanoseconds / 1_000_000_000)), ("outbox", outbox),
            ("clock", .object([("synced", .bool(clockSynced))])), ("sensors", .array(sensorList)), ("receivers", .array(receiverList)),
            ("diskFreePct", diskFreePercent.map { .double(($0 * 10).rounded() / 10) }),
        ]
        return .object(dropping: fields)
    }
}

/// The platform's answer to a heartbeat.
public struct HeartbeatReply: Sendable, Equatable {
    /// The interval the platform asks for, clamped to 30-3600 s; nil when it did not say.
    public var nextInterval: Duration?
    public var configETag: String?
    public var commandsPending: Bool
    public var serverTime: WallTime?

    public static let allowed: ClosedRange<Int64> = 30...3600

    public static func parse(_ body: [UInt8]) -> HeartbeatReply? {
        guard let json = try? JSONValue.parse(bytes: body), case .object = json else { return nil }
        return HeartbeatReply(
            nextInterval: json["nextHeartbeatSec"]?.intValue.map { .seconds(min(max($0, allowed.lowerBound), allowed.upperBound)) },
            configETag: json["configEtag"]?.stringValue,
            commandsPending: json["commandsPending"]?.boolValue ?? false,
            serverTime: json["serverTime"]?.stringValue.flatMap { RFC3339.parse($0)?.time })
    }
}

/// A command from the platform (`GET .../commands`). Running one twice is harmless.
public struct PlatformCommand: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case testAlarm
        case diagnostics
        case setHeartbeat(seconds: Int64?)
        case reloadConfig
        /// Forget a BLE sensor's counters (`vaktpost reset-counter`); the sensor's id.
        case resetCounter(sensor: String?)
        case unknown(String)
    }

    public var id: String
    public var seq: Int64
    public var kind: Kind

    public init(id: String, seq: Int64, kind: Kind) {
        self.id = id
        self.seq = seq
        self.kind = kind
    }

    /// Reads a CommandList; nil when the body is not one.
    public static func list(_ body: [UInt8]) -> [PlatformCommand]? {
        guard let json = try? JSONValue.parse(bytes: body), case .array(let items)? = json["commands"] else { return nil }
        return items.compactMap { c in
            guard let id = c["commandId"]?.stringValue, !id.isEmpty, let seq = c["commandSeq"]?.intValue, let kind = c["kind"]?.stringValue else { return nil }
            switch kind {
            case "test-alarm": return PlatformCommand(id: id, seq: seq, kind: .testAlarm)
            case "diagnostics": return PlatformCommand(id: id, seq: seq, kind: .diagnostics)
            case "set-heartbeat": return PlatformCommand(id: id, seq: seq, kind: .setHeartbeat(seconds: c["args"]?["seconds"]?.intValue))
            case "reload-config": return PlatformCommand(id: id, seq: seq, kind: .reloadConfig)
            case "reset-counter": return PlatformCommand(id: id, seq: seq, kind: .resetCounter(sensor: c["args"]?["sensor"]?.stringValue))
            default: return PlatformCommand(id: id, seq: seq, kind: .unknown(kind))
            }
        }
    }

    public enum Outcome: String, Sendable { case done, failed, refused }

    /// A CommandResult body.
    public static func result(id: String, _ outcome: Outcome, detail: [(String, JSONValue)]) -> [UInt8] {
        JSONValue.object([("commandId", .string(id)), ("status", .string(outcome.rawValue)), ("detail", .object(detail))]).serializedBytes
    }
}

/// Re-stamping events made while the wall clock was not synchronised (research/uplink.md §3.9).
public enum TimeCorrection {
    /// Bytes every event stamped by an unsynchronised clock carries (the compact serialisation
    /// of `clock.synced`): a cheap filter before parsing.
    public static let unsyncedMark = "\"synced\":false"

    /// The corrected event, or nil when it needs none: it was stamped with a synchronised clock,
    /// was already corrected, or belongs to another boot (its boot time means nothing now).
    /// `offset` is wall time minus boot time, measured once the clock is synchronised.
    public static func correct(_ payload: [UInt8], bootID: String, offsetNanoseconds: Int64, zone: TimeZoneRules) -> (payload: [UInt8], occurredAt: WallTime)? {
        guard let event = try? JSONValue.parse(bytes: payload), case .object(var fields) = event,
              event["bootId"]?.stringValue == bootID, let clock = event["clock"], clock["synced"]?.boolValue == false,
              clock["corrected"]?.boolValue != true, let boottime = clock["boottimeNs"]?.intValue, let original = event["occurredAt"]
        else { return nil }
        // A boot time that does not land in a plausible present (damaged, or a clock gone mad) is
        // left as it was rather than turned into a nonsense stamp. (Fuzzing found the overflow.)
        let (sum, overflow) = boottime.addingReportingOverflow(offsetNanoseconds)
        guard boottime >= 0, !overflow, (946_684_800_000_000_000...7_258_118_400_000_000_000).contains(sum) else { return nil }
        let wall = WallTime(nanosecondsSinceEpoch: sum)
        for i in fields.indices {
            switch fields[i].0 {
            case "occurredAt":
                fields[i].1 = .string(RFC3339.format(wall, utcOffsetSeconds: zone.utcOffset(at: wall), fractionDigits: 3))
            case "clock":
                guard case .object(var c) = fields[i].1 else { continue }
                c.removeAll { $0.0 == "corrected" }
                c.append(("corrected", .bool(true)))
                fields[i].1 = .object(c)
            case "data":
                // The original stamp stays with the event, so nothing is hidden from an investigation.
                guard case .object(var d) = fields[i].1 else { continue }
                d.append(("uncorrectedOccurredAt", original))
                fields[i].1 = .object(d)
            default: continue
            }
        }
        return (JSONValue.object(fields).serializedBytes, wall)
    }
}
