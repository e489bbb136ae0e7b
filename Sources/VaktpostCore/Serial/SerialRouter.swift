/// Routes EnOcean telegrams to configured sensors by sender id: the meaning of a sender comes
/// from config (`sender`, `eep`, role), never from guessing.
public struct SerialRouter: Sendable {
    let sensors: [String: SensorConfig]
    /// (sender, RORG, payload) → when last seen: repeaters deliver one telegram several times.
    var recent: [String: WallTime] = [:]

    public init(sensors: [SensorConfig]) {
        self.sensors = Dictionary(uniqueKeysWithValues: sensors.compactMap { s in s.enocean.map { ($0.sender, s) } })
    }

    /// What one telegram meant: its sensor (if configured), the reading (if it says anything),
    /// whether it was a repeat within a second (dropped) and a teach-in's profile.
    public struct Heard: Sendable {
        public var telegram: ESP3Telegram
        public var sensor: SensorID?
        public var reading: Reading?
        public var repeated: Bool
    }

    public mutating func handle(_ t: ESP3Telegram, at time: WallTime) -> Heard {
        guard let sender = t.senderID, let rorg = t.rorg else { return Heard(telegram: t, sensor: nil, reading: nil, repeated: false) }
        let key = "\(sender) \(rorg) \(Hex.string(t.payload))"
        let repeated = recent[key].map { time - $0 < .seconds(1) } ?? false
        // The window runs from the original, not from the latest copy: repeaters' copies come
        // within it, while a press repeated on purpose every half second still counts each second.
        if !repeated { recent[key] = time }
        if recent.count > 512 { recent = recent.filter { time - $0.value < .seconds(1) } }
        let sensor = sensors[sender]
        var heard = Heard(telegram: t, sensor: sensor?.id, reading: nil, repeated: repeated)
        if !repeated, let sensor, let binding = sensor.enocean, let values = EEP.reading(t, eep: binding.eep, role: sensor.role) {
            heard.reading = Reading(sensor: sensor.id, receivedAt: time, values: values)
        }
        return heard
    }
}
