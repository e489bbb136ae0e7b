/// The BTHome v2 object table (bthome.io/format), as data: id, kind, size, scale, and the
/// property name the decode output uses (bthome-ble's naming, so the shared vectors compare).
struct BTHomeObjectType: Sendable {
    enum Kind: Sendable {
        case sensor
        case binary
        case button
        case dimmer
        case text
        case raw
        case timestamp
        /// Device information (0xF0-0xF2): decoded past, not reported as a sensor.
        case deviceInfo
    }

    var id: UInt8
    var name: String
    var kind: Kind
    /// Value bytes; 0 for length-prefixed objects (text, raw).
    var length: Int
    var signed: Bool
    var factor: Double

    init(_ id: UInt8, _ name: String, _ kind: Kind = .sensor, _ length: Int = 1, signed: Bool = false, factor: Double = 1) {
        self.id = id
        self.name = name
        self.kind = kind
        self.length = length
        self.signed = signed
        self.factor = factor
    }

    /// Decimals a scaled value is rounded to: as many as the factor has (0.35 → 2).
    var decimals: Int {
        var f = factor
        var d = 0
        while d < 6 && abs(f - f.rounded()) > 1e-9 {
            f *= 10
            d += 1
        }
        return d
    }
}

enum BTHomeObjects {
    static let table: [UInt8: BTHomeObjectType] = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0) })

    static let all: [BTHomeObjectType] = [
        .init(0x00, "packet_id"),
        .init(0x01, "battery"),
        .init(0x02, "temperature", .sensor, 2, signed: true, factor: 0.01),
        .init(0x03, "humidity", .sensor, 2, factor: 0.01),
        .init(0x04, "pressure", .sensor, 3, factor: 0.01),
        .init(0x05, "illuminance", .sensor, 3, factor: 0.01),
        .init(0x06, "mass", .sensor, 2, factor: 0.01),
        .init(0x07, "mass", .sensor, 2, factor: 0.01),
        .init(0x08, "dew_point", .sensor, 2, signed: true, factor: 0.01),
        .init(0x09, "count", .sensor, 1),
        .init(0x0A, "energy", .sensor, 3, factor: 0.001),
        .init(0x0B, "power", .sensor, 3, factor: 0.01),
        .init(0x0C, "voltage", .sensor, 2, factor: 0.001),
        .init(0x0D, "pm25", .sensor, 2),
        .init(0x0E, "pm10", .sensor, 2),
        .init(0x0F, "generic", .binary),
        .init(0x10, "power", .binary),
        .init(0x11, "opening", .binary),
        .init(0x12, "carbon_dioxide", .sensor, 2),
        .init(0x13, "volatile_organic_compounds", .sensor, 2),
        .init(0x14, "moisture", .sensor, 2, factor: 0.01),
        .init(0x15, "battery", .binary),
        .init(0x16, "battery_charging", .binary),
        .init(0x17, "carbon_monoxide", .binary),
        .init(0x18, "cold", .binary),
        .init(0x19, "connectivity", .binary),
        .init(0x1A, "door", .binary),
        .init(0x1B, "garage_door", .binary),
        .init(0x1C, "gas", .binary),
        .init(0x1D, "heat", .binary),
        .init(0x1E, "light", .binary),
        .init(0x1F, "lock", .binary),
        .init(0x20, "moisture", .binary),
        .init(0x21, "motion", .binary),
        .init(0x22, "moving", .binary),
        .init(0x23, "occupancy", .binary),
        .init(0x24, "plug", .binary),
        .init(0x25, "presence", .binary),
        .init(0x26, "problem", .binary),
        .init(0x27, "running", .binary),
        .init(0x28, "safety", .binary),
        .init(0x29, "smoke", .binary),
        .init(0x2A, "sound", .binary),
        .init(0x2B, "tamper", .binary),
        .init(0x2C, "vibration", .binary),
        .init(0x2D, "window", .binary),
        .init(0x2E, "humidity"),
        .init(0x2F, "moisture"),
        .init(0x3A, "button", .button),
        .init(0x3C, "dimmer", .dimmer, 2),
        .init(0x3D, "count", .sensor, 2),
        .init(0x3E, "count", .sensor, 4),
        .init(0x3F, "rotation", .sensor, 2, signed: true, factor: 0.1),
        .init(0x40, "distance", .sensor, 2),
        .init(0x41, "distance", .sensor, 2, factor: 0.1),
        .init(0x42, "duration", .sensor, 3, factor: 0.001),
        .init(0x43, "current", .sensor, 2, factor: 0.001),
        .init(0x44, "speed", .sensor, 2, factor: 0.01),
        .init(0x45, "temperature", .sensor, 2, signed: true, factor: 0.1),
        .init(0x46, "uv_index", .sensor, 1, factor: 0.1),
        .init(0x47, "volume", .sensor, 2, factor: 0.1),
        .init(0x48, "volume", .sensor, 2),
        .init(0x49, "volume_flow_rate", .sensor, 2, factor: 0.001),
        .init(0x4A, "voltage", .sensor, 2, factor: 0.1),
        .init(0x4B, "gas", .sensor, 3, factor: 0.001),
        .init(0x4C, "gas", .sensor, 4, factor: 0.001),
        .init(0x4D, "energy", .sensor, 4, factor: 0.001),
        .init(0x4E, "volume", .sensor, 4, factor: 0.001),
        .init(0x4F, "water", .sensor, 4, factor: 0.001),
        .init(0x50, "timestamp", .timestamp, 4),
        .init(0x51, "acceleration", .sensor, 2, factor: 0.001),
        .init(0x52, "gyroscope", .sensor, 2, factor: 0.001),
        .init(0x53, "text", .text, 0),
        .init(0x54, "raw", .raw, 0),
        .init(0x55, "volume_storage", .sensor, 4, factor: 0.001),
        .init(0x56, "conductivity", .sensor, 2),
        .init(0x57, "temperature", .sensor, 1, signed: true),
        .init(0x58, "temperature", .sensor, 1, signed: true, factor: 0.35),
        .init(0x59, "count", .sensor, 1, signed: true),
        .init(0x5A, "count", .sensor, 2, signed: true),
        .init(0x5B, "count", .sensor, 4, signed: true),
        .init(0x5C, "power", .sensor, 4, signed: true, factor: 0.01),
        .init(0x5D, "current", .sensor, 2, signed: true, factor: 0.001),
        .init(0x5E, "direction", .sensor, 2, factor: 0.01),
        .init(0x5F, "precipitation", .sensor, 2, factor: 0.1),
        .init(0x60, "channel"),
        .init(0x61, "rotational_speed", .sensor, 2),
        .init(0x62, "speed", .sensor, 4, signed: true, factor: 0.000001),
        .init(0x63, "acceleration", .sensor, 4, signed: true, factor: 0.000001),
        .init(0x64, "light_level"),
        .init(0xF0, "device_type_id", .deviceInfo, 2),
        .init(0xF1, "firmware_version", .deviceInfo, 4),
        .init(0xF2, "firmware_version", .deviceInfo, 3),
    ]

    /// Button event codes (0x3A). 0x00 "none" holds a button's place but is not an event.
    static let buttonEvents: [UInt8: String] = [
        0x01: "press", 0x02: "double_press", 0x03: "triple_press", 0x04: "long_press",
        0x05: "long_double_press", 0x06: "long_triple_press", 0x80: "hold_press",
    ]

    static let dimmerEvents: [UInt8: String] = [0x01: "rotate_left", 0x02: "rotate_right"]
}
