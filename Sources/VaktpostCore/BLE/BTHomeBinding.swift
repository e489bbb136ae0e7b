/// Turns a decoded BTHome packet into the reading the rule engine sees for one configured
/// sensor: its `field` says which BTHome value drives the sensor's role, and battery, tamper and
/// RSSI travel with every reading.
public enum BTHomeBinding {
    public static func values(_ packet: BTHomePacket, for sensor: SensorConfig, field: String, rssi: Int?) -> ReadingValues {
        var v = ReadingValues(rssi: rssi)
        if case .number(let battery, _)? = packet.sensor("battery") ?? packet.sensor("battery_1") { v.battery = Int(battery) }
        v.tamper = packet.binary("tamper") ?? packet.binary("tamper_1")
        let state: Bool?
        if field == "button" {
            // Any real press (not "none") of any button: the event already fired once per packet id.
            let pressed = packet.events.contains { $0.0 == "button" || $0.0.hasPrefix("button_") }
            state = pressed ? true : nil
        } else {
            state = packet.binary(field) ?? packet.binary(field + "_1")
        }
        guard let state else { return v }
        switch sensor.role {
        case .bed: v.occupied = state
        case .door: v.open = state
        case .motion: v.motion = state
        case .fall: v.fall = state
        case .button: v.pressed = state ? true : nil  // a button has no "released" reading
        }
        return v
    }
}
