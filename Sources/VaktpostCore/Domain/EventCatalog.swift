/// A dotted event name. Every type the agent raises is listed in `EventCatalog`, which is also
/// the table a platform integrator reads (docs and README list the same entries).
public struct EventType: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public static func < (a: EventType, b: EventType) -> Bool { a.rawValue < b.rawValue }
    public var description: String { rawValue }

    // Alarms from supervision rules.
    public static let bedNotReturned = EventType("bed.not_returned")
    public static let bedNotUp = EventType("bed.not_up")
    public static let doorOpenedAtNight = EventType("door.opened_at_night")
    public static let doorLeftOpen = EventType("door.left_open")
    public static let fallDetected = EventType("fall.detected")
    public static let buttonPressed = EventType("button.pressed")
    public static let activityNone = EventType("activity.none")

    // Sensor state changes (the operator's timeline).
    public static let bedState = EventType("bed.state")
    public static let doorState = EventType("door.state")
    public static let motionState = EventType("motion.state")

    // Technical alarms every sensor gets without a rule.
    public static let sensorSilent = EventType("sensor.silent")
    public static let sensorBatteryLow = EventType("sensor.battery_low")
    public static let sensorTamper = EventType("sensor.tamper")
    public static let sensorFlooding = EventType("sensor.flooding")
    public static let sensorRefused = EventType("sensor.refused")

    // Technical alarms of the hub itself.
    public static let bleAdapterUnavailable = EventType("ble.adapter_unavailable")
    public static let serialReceiverUnplugged = EventType("serial.receiver_unplugged")
    public static let uplinkLost = EventType("uplink.lost")
    public static let uplinkRestored = EventType("uplink.restored")
    public static let uplinkRejected = EventType("uplink.rejected")
    public static let uplinkUnauthorized = EventType("uplink.unauthorized")
    public static let outboxPressure = EventType("outbox.pressure")
    public static let outboxDiskFull = EventType("outbox.disk_full")
    public static let outboxWriteFailed = EventType("outbox.write_failed")
    public static let outboxRecovered = EventType("outbox.recovered")
    public static let agentRestarted = EventType("agent.restarted")
    public static let clockUnsynced = EventType("clock.unsynced")
    public static let clockStepped = EventType("clock.stepped")
    public static let configRejected = EventType("config.rejected")
    public static let alarmUnacknowledged = EventType("alarm.unacknowledged")
    public static let alarmUndelivered = EventType("alarm.undelivered")

    // The periodic alarm test.
    public static let testAlarm = EventType("test.alarm")
}

/// What the agent knows about each event type: its class, default priority, and codes.
public struct EventKind: Sendable {
    public var type: EventType
    public var eventClass: EventClass
    public var priority: Priority
    /// SCAIP device type; nil means "the sensor's own" (from its role).
    public var deviceType: String?
    /// SCAIP status code while active, and when cleared (nil: no code of its own, use restoral 0094).
    public var activeStatus: String?
    public var clearedStatus: String?
    public var vkpReason: String?
    public var vkpAlert: String?
    /// One line for operators and technicians: what it means and what to do.
    public var meaning: String
}

public enum EventCatalog {
    /// SCAIP device types for events of the hub rather than a sensor.
    static let localUnit = "0002"
    static let linkMonitor = "0032"
    static let systemMonitor = "0031"
    /// SCAIP `0094` restoral: the generic "it ended".
    static let restoral = "0094"

    public static let kinds: [EventKind] = [
        // Alarms. VKP alert 4.N pairs with encounter reason N (vkp-alert-code-v090).
        EventKind(type: .bedNotReturned, eventClass: .alarm, priority: Priority(7), deviceType: "0012", activeStatus: "0104", clearedStatus: nil, vkpReason: "2", vkpAlert: "4.2",
                  meaning: "Left bed inside the night window and not back within the configured time. Call the resident."),
        EventKind(type: .bedNotUp, eventClass: .alarm, priority: Priority(6), deviceType: "0012", activeStatus: "0117", clearedStatus: nil, vkpReason: "9", vkpAlert: "4.9",
                  meaning: "Still in bed at the time the resident is normally up."),
        EventKind(type: .doorOpenedAtNight, eventClass: .alarm, priority: Priority(7), deviceType: "0014", activeStatus: "0076", clearedStatus: "0021", vkpReason: "15", vkpAlert: "4.15",
                  meaning: "A supervised door opened inside its night window."),
        EventKind(type: .doorLeftOpen, eventClass: .alarm, priority: Priority(5), deviceType: "0014", activeStatus: "0077", clearedStatus: "0021", vkpReason: "15", vkpAlert: "4.15",
                  meaning: "A door has stood open longer than allowed."),
        EventKind(type: .fallDetected, eventClass: .alarm, priority: Priority(9), deviceType: "0005", activeStatus: "0009", clearedStatus: nil, vkpReason: "1", vkpAlert: "4.1",
                  meaning: "The fall detector reported a fall."),
        EventKind(type: .buttonPressed, eventClass: .alarm, priority: Priority(9), deviceType: nil, activeStatus: "0010", clearedStatus: nil, vkpReason: "13", vkpAlert: "4.13",
                  meaning: "The resident pressed an alarm button."),
        EventKind(type: .activityNone, eventClass: .alarm, priority: Priority(6), deviceType: "0010", activeStatus: "0049", clearedStatus: nil, vkpReason: "9", vkpAlert: "4.9",
                  meaning: "No activity from the listed sensors for the configured time."),

        // State changes: the status code depends on the new state and is given when the event is made.
        EventKind(type: .bedState, eventClass: .state, priority: Priority(1), deviceType: "0012", activeStatus: nil, clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "The bed became occupied (0117 lying in bed) or vacant (0003 absent)."),
        EventKind(type: .doorState, eventClass: .state, priority: Priority(1), deviceType: "0014", activeStatus: nil, clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "The door opened (0076) or closed (0021)."),
        EventKind(type: .motionState, eventClass: .state, priority: Priority(1), deviceType: nil, activeStatus: nil, clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "Movement was seen (0119) or stopped (0070 normal state)."),

        // Technical alarms of sensors.
        EventKind(type: .sensorSilent, eventClass: .technical, priority: Priority(4), deviceType: nil, activeStatus: "0123", clearedStatus: "0124", vkpReason: nil, vkpAlert: nil,
                  meaning: "Nothing heard from the sensor for its supervision time: flat battery, out of range, or removed. Check it on site."),
        EventKind(type: .sensorBatteryLow, eventClass: .technical, priority: Priority(3), deviceType: nil, activeStatus: "0016", clearedStatus: "0015", vkpReason: nil, vkpAlert: nil,
                  meaning: "The sensor's battery is below its threshold. Replace it on the next visit."),
        EventKind(type: .sensorTamper, eventClass: .technical, priority: Priority(5), deviceType: nil, activeStatus: "0125", clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "The sensor was opened or moved."),
        EventKind(type: .sensorFlooding, eventClass: .technical, priority: Priority(3), deviceType: nil, activeStatus: "0067", clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "The sensor sends far more readings than a real one (over 20 a second): broken, stuck, or its frames replayed. Its readings are still handled; check it on site."),
        EventKind(type: .sensorRefused, eventClass: .technical, priority: Priority(5), deviceType: nil, activeStatus: "0066", clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "The sensor is sending, but the hub refuses its packets (data.reason), so it is not heard and its presses raise nothing. An EnOcean sensor whose telegrams do not fit its eep: set the sensor's profile (`vaktpost scan --serial`). A wrong bthome_key: set the sensor's. A counter that went back after a battery change: `vaktpost reset-counter SENSOR` on the hub, or the platform's `reset-counter` command, then press the sensor. Otherwise someone may be replaying or spoofing it. Cleared once its packets are taken again."),

        // Technical alarms of the hub.
        EventKind(type: .bleAdapterUnavailable, eventClass: .technical, priority: Priority(5), deviceType: localUnit, activeStatus: "0067", clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "The Bluetooth adapter cannot scan; BLE sensors are not heard. The reason is in the event data."),
        EventKind(type: .serialReceiverUnplugged, eventClass: .technical, priority: Priority(5), deviceType: localUnit, activeStatus: "0067", clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "The radio receiver on the serial port is gone; its sensors are not heard. Plug it back in."),
        EventKind(type: .uplinkLost, eventClass: .technical, priority: Priority(4), deviceType: linkMonitor, activeStatus: "0023", clearedStatus: "0112", vkpReason: nil, vkpAlert: nil,
                  meaning: "No successful exchange with the platform for three heartbeat intervals. Delivered when the link returns, with the outage length."),
        EventKind(type: .uplinkRestored, eventClass: .technical, priority: Priority(4), deviceType: linkMonitor, activeStatus: "0112", clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "The link to the platform works again."),
        EventKind(type: .uplinkRejected, eventClass: .technical, priority: Priority(4), deviceType: linkMonitor, activeStatus: "0067", clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "The platform refused events as invalid; they are kept as dead letters. See `vaktpost queue dead-letters`."),
        EventKind(type: .uplinkUnauthorized, eventClass: .technical, priority: Priority(5), deviceType: linkMonitor, activeStatus: "0067", clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "The platform refused the hub's certificate (401/403). Renew or reinstall the hub certificate."),
        EventKind(type: .outboxPressure, eventClass: .technical, priority: Priority(3), deviceType: localUnit, activeStatus: "0068", clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "The outbox is full and old log/state events are being evicted; alarms are never evicted."),
        EventKind(type: .outboxDiskFull, eventClass: .technical, priority: Priority(5), deviceType: localUnit, activeStatus: "0068", clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "The disk is full; alarms are held in memory until writes succeed. Free space on the hub."),
        EventKind(type: .outboxWriteFailed, eventClass: .technical, priority: Priority(5), deviceType: localUnit, activeStatus: "0067", clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "The outbox cannot write to its disk (an I/O error, a file system remounted read-only, another process holding its lock; `data.error` says which). Events are held in memory and alarms are still sent from there; with `data.standIn`, the outbox could not be opened at start and the agent runs from that stand-in. Check the SD card (`dmesg`)."),
        EventKind(type: .outboxRecovered, eventClass: .technical, priority: Priority(4), deviceType: localUnit, activeStatus: "0067", clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "The outbox database was damaged and replaced; events not yet sent before the damage may be missing, and the rules started afresh. With data.repaired: rows with damaged event ids were mended in place. With data.ruleState: the saved rule state was unreadable and the rules started afresh (a running rule timer is lost)."),
        EventKind(type: .agentRestarted, eventClass: .technical, priority: Priority(3), deviceType: localUnit, activeStatus: "0067", clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "The agent started after an unclean stop (crash, power loss, watchdog)."),
        EventKind(type: .clockUnsynced, eventClass: .technical, priority: Priority(3), deviceType: systemMonitor, activeStatus: "0067", clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "The hub's clock has not been synchronised for 10 minutes; night windows may be off."),
        EventKind(type: .clockStepped, eventClass: .technical, priority: Priority(3), deviceType: systemMonitor, activeStatus: "0067", clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "The hub's wall clock jumped by more than a minute (stepS). If the clock is synchronised (followed: true) the agent follows it, which moves pending rule timers by the step; otherwise it keeps its own time (boot time) and nothing moves."),
        EventKind(type: .configRejected, eventClass: .technical, priority: Priority(4), deviceType: localUnit, activeStatus: "0067", clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "A pushed configuration was invalid and was refused; the previous one stays in force."),

        EventKind(type: .alarmUnacknowledged, eventClass: .technical, priority: Priority(8), deviceType: linkMonitor, activeStatus: "0023", clearedStatus: "0112", vkpReason: nil, vkpAlert: nil,
                  meaning: "The platform received an alarm but no operator acknowledged it in time; the hub also sent it to the secondary platform. Call the response centre."),

        EventKind(type: .alarmUndelivered, eventClass: .technical, priority: Priority(8), deviceType: linkMonitor, activeStatus: "0023", clearedStatus: "0112", vkpReason: nil, vkpAlert: nil,
                  meaning: "The platform answers the hub, and takes its other events, but keeps failing one alarm (data.alarmEventId, data.alarmType, data.lastError: a 5xx, 429 or a reply that is not its answer, or no answer within the hub's attempt while the platform answered its other requests). The hub keeps sending it and sends the alarms behind it meanwhile. The alarm arrives once the platform takes it; until then its operators have not seen it: call the resident, and look up the eventId in the platform's logs. Cleared when the alarm leaves the hub's queue (data.outcome: delivered, or rejected when the platform refused it for good), also by an agent restarted meanwhile."),

        EventKind(type: .testAlarm, eventClass: .test, priority: Priority(5), deviceType: localUnit, activeStatus: "0102", clearedStatus: nil, vkpReason: nil, vkpAlert: nil,
                  meaning: "The periodic alarm test (periodisk alarmkontroll)."),
    ]

    private static let byType: [EventType: EventKind] = Dictionary(uniqueKeysWithValues: kinds.map { ($0.type, $0) })

    public static func kind(of type: EventType) -> EventKind? { byType[type] }

    /// The codes an event of `type` in `state` carries, for a sensor of `role` in `room`.
    /// `status` overrides the catalog's status code (state events, whose code depends on the value).
    public static func codes(for type: EventType, state: EventState, role: SensorRole?, room: Room?, status: String? = nil) -> EventCodes {
        guard let kind = byType[type] else {
            preconditionFailure("event type \(type) is not in EventCatalog")
        }
        let deviceType = kind.deviceType ?? role?.scaipDeviceType ?? localUnit
        let stc: String?
        if let status {
            stc = status
        } else {
            switch state {
            case .active, .update: stc = kind.activeStatus
            case .cleared: stc = kind.clearedStatus ?? restoral
            case .cancelled: stc = "0019"
            }
        }
        return EventCodes(
            scaipDeviceType: deviceType, scaipStatus: stc, scaipLocation: (room ?? .home).scaipLocationCode,
            vkpReason: kind.vkpReason, vkpAlert: kind.vkpAlert)
    }
}
