/// The validated configuration of one hub: who the resident's sensors are, what the rules are,
/// where events go. Built only through `ConfigReader`, so every value here has passed validation.
public struct Config: Sendable {
    public var hub: HubConfig
    public var platform: PlatformConfig?
    public var sensors: [SensorConfig]
    public var rules: [RuleConfig]
    public var outbox: OutboxConfig
    public var ble: BLEConfig
    public var serial: [SerialConfig]

    public func sensor(_ id: SensorID) -> SensorConfig? { sensors.first { $0.id == id } }
}

public struct HubConfig: Sendable {
    public var id: String
    /// An IANA zone name from the system tz database; the night windows are read in this zone.
    public var timezone: String
}

public struct PlatformConfig: Sendable {
    public var url: String
    /// Tried as well when the primary has not accepted an alarm within 10 s.
    public var secondaryURL: String?
    /// CA bundle that signs the platform's server certificate; the system store when absent.
    public var caFile: String?
    /// SPKI pins (`sha256//<base64>`), several so the platform can rotate keys.
    public var pins: [String]
    /// The hub's own identity for mutual TLS.
    public var clientCert: String?
    public var clientKey: String?
    public var heartbeat: Duration
    public var connectTimeout: Duration
    /// An alarm received but not acknowledged by an operator this long after is escalated.
    public var acknowledgeWithin: Duration
}

public enum Transport: String, CaseIterable, Sendable {
    case ble
    case enocean
}

public struct SensorConfig: Sendable {
    public var id: SensorID
    public var role: SensorRole
    public var room: Room
    /// Silent longer than this raises `sensor.silent`; nil: not supervised.
    public var supervision: Duration?
    public var batteryLow: Int
    public var debounce: Duration
    /// How the hub hears it; nil for sensors that exist only in replay scenarios.
    public var transport: Transport?
    public var ble: BLEBinding?
    public var enocean: EnOceanBinding?
}

public struct BLEBinding: Sendable {
    /// `AA:BB:CC:DD:EE:FF`, upper case.
    public var address: String
    /// The BTHome field that drives the sensor's role (`window`, `occupancy`, `button`, ...).
    public var field: String
    /// AES-128 key for encrypted BTHome, 16 bytes.
    public var bthomeKey: [UInt8]?
}

public struct EnOceanBinding: Sendable {
    /// Sender id, 8 hex digits upper case: `01825DAB`.
    public var sender: String
    /// EnOcean Equipment Profile: `D5-00-01`.
    public var eep: String
}

public enum RuleKind: String, CaseIterable, Sendable {
    case notBackInBed = "not-back-in-bed"
    case notUpBy = "not-up-by"
    case doorAtNight = "door-at-night"
    case doorLeftOpen = "door-left-open"
    case fall
    case button
    case inactivity
}

public struct RuleConfig: Sendable {
    public var id: String
    public var kind: RuleKind
    /// One sensor for every kind but `inactivity`, which watches a list.
    public var sensors: [SensorID]
    public var window: DailyWindow?
    public var after: Duration?
    public var at: TimeOfDay?
}

public struct OutboxConfig: Sendable {
    public var path: String
    public var maxBytes: Int64
    public var maxRows: Int

    public static let defaultPath = "/var/lib/vaktpost/outbox.sqlite"

    /// The directory of the outbox, where the agent keeps its other state files too.
    public var directory: String { path.parentDirectory }
}

public enum BLEMode: String, CaseIterable, Sendable {
    /// HCI user channel: the agent owns the adapter alone (bluetoothd loses it).
    case userChannel = "user-channel"
    /// Raw HCI socket sending its own scan commands, beside bluetoothd.
    case raw
    /// Listen only; bluetoothd (with DuplicateData=true) runs the scan.
    case listenOnly = "listen-only"
}

public struct BLEConfig: Sendable {
    public var adapter: String
    public var mode: BLEMode
    /// A btsnoop capture to read instead of the adapter.
    public var replay: String?
    /// No advertising reports for this long: restart the scan, then raise `ble.adapter_unavailable`.
    public var silentAfter: Duration

    /// What a config without a `[ble]` section gets.
    public static let defaults = BLEConfig(adapter: "hci0", mode: .raw, replay: nil, silentAfter: .seconds(60))
}

public struct SerialConfig: Sendable {
    public var name: String
    public var path: String?
    public var match: SerialMatch?
    public var baud: Int
    /// No byte from the receiver for this long: ping it; three unanswered pings reopen it.
    public var pingAfter: Duration
}

/// A USB serial receiver recognised by its udev properties, so it is found on any port.
public struct SerialMatch: Sendable, Hashable {
    /// `ID_VENDOR_ID`, 4 hex digits: `0403`.
    public var vendor: String?
    /// `ID_MODEL_ID`, 4 hex digits: `6001`.
    public var model: String?
    /// `ID_SERIAL_SHORT`.
    public var serial: String?
}
