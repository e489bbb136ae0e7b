/// A sensor's configured name: `bed`, `front-door`. Lower-case letters, digits and '-', so it is
/// safe in logs, URLs and file names, and carries no personal data.
public struct SensorID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public static let hint = "use 1-32 lower-case letters, digits and '-', e.g. \"bed\" or \"front-door\""

    public init?(_ text: String) {
        guard (1...32).contains(text.utf8.count),
            text.utf8.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D })
        else { return nil }
        rawValue = text
    }

    public static func < (a: SensorID, b: SensorID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { rawValue }
}

/// What a sensor supervises. The role decides which readings make sense and which SCAIP device type it is.
public enum SensorRole: String, CaseIterable, Sendable {
    case bed, door, fall, button, motion

    /// SCAIP device type (`dty`, SS 91100 Annex A).
    public var scaipDeviceType: String {
        switch self {
        case .bed: return "0012"  // bed monitor
        case .door: return "0014"  // door sensor
        case .fall: return "0005"  // fall detector
        case .button: return "0003"  // personal trigger
        case .motion: return "0010"  // activity detector
        }
    }
}

/// Where a sensor sits in the home, with its SCAIP location code (`lco`, SS 91100 Annex D).
public enum Room: String, CaseIterable, Sendable {
    case home
    case bathroom
    case bedroom
    case kitchen
    case door
    case frontDoor = "front-door"
    case backDoor = "back-door"
    case hallway
    case livingRoom = "living-room"
    case room

    public var scaipLocationCode: String {
        switch self {
        case .home: return "002"
        case .bathroom: return "011"
        case .bedroom: return "012"
        case .kitchen: return "021"
        case .door: return "038"
        case .frontDoor: return "039"
        case .backDoor: return "040"
        case .hallway: return "042"
        case .livingRoom: return "043"
        case .room: return "049"
        }
    }

    /// The text an operator at a Norwegian response centre sees (`location.text`).
    public var norwegianName: String {
        switch self {
        case .home: return "Bolig"
        case .bathroom: return "Bad/WC"
        case .bedroom: return "Soverom"
        case .kitchen: return "Kjøkken"
        case .door: return "Dør"
        case .frontDoor: return "Inngangsdør"
        case .backDoor: return "Bakdør"
        case .hallway: return "Gang"
        case .livingRoom: return "Stue"
        case .room: return "Rom"
        }
    }
}

/// What one frame from a sensor said. Every field is optional because one frame may carry
/// several values (a door contact with its battery level) or none (a bare "I am alive").
public struct ReadingValues: Hashable, Sendable {
    /// Bed: someone is in it.
    public var occupied: Bool?
    /// Door: open.
    public var open: Bool?
    /// Fall detector: a fall (true) or its all-clear (false).
    public var fall: Bool?
    /// Button: pressed. Momentary: every press counts.
    public var pressed: Bool?
    /// Motion or presence detected.
    public var motion: Bool?
    /// Battery level in percent, 0-100.
    public var battery: Int?
    /// The sensor's case is open or it was moved.
    public var tamper: Bool?
    /// Received signal strength in dBm, as heard by the hub.
    public var rssi: Int?

    public init(
        occupied: Bool? = nil, open: Bool? = nil, fall: Bool? = nil, pressed: Bool? = nil, motion: Bool? = nil,
        battery: Int? = nil, tamper: Bool? = nil, rssi: Int? = nil
    ) {
        self.occupied = occupied
        self.open = open
        self.fall = fall
        self.pressed = pressed
        self.motion = motion
        self.battery = battery
        self.tamper = tamper
        self.rssi = rssi
    }
}

/// One decoded frame from one configured sensor, at the moment the hub received it.
public struct Reading: Hashable, Sendable {
    public var sensor: SensorID
    public var receivedAt: WallTime
    public var values: ReadingValues

    public init(sensor: SensorID, receivedAt: WallTime, values: ReadingValues) {
        self.sensor = sensor
        self.receivedAt = receivedAt
        self.values = values
    }
}
