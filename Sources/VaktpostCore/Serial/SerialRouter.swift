/// Routes EnOcean telegrams to configured sensors by sender id: the meaning of a sender comes
/// from config (`sender`, `eep`, role), never from guessing.
public struct SerialRouter: Sendable {
    let sensors: [String: SensorConfig]
    /// (sender, RORG, payload) → when, and by which receiver, it was last heard as a telegram of
    /// its own: repeaters deliver one telegram several times.
    var recent: [String: (time: WallTime, receiver: String)] = [:]

    public init(sensors: [SensorConfig]) {
        self.sensors = Dictionary(uniqueKeysWithValues: sensors.compactMap { s in s.enocean.map { ($0.sender, s) } })
    }

    /// What one telegram meant: its sensor (if configured), the reading (if it says anything),
    /// whether it was a copy (dropped) and a teach-in's profile.
    public struct Heard: Sendable {
        public var telegram: ESP3Telegram
        public var sensor: SensorID?
        public var reading: Reading?
        public var repeated: Bool
        /// Why the configured sensor's telegram cannot be read with its eep (`EEP.misfit`).
        public var misfit: String?
    }

    /// A copy is the same telegram within a second of the one it copies, come through a repeater
    /// (its status counts the repeaters) or heard by another of the hub's receivers. The sender's
    /// own transmission (repeater count 0) heard again by the same receiver is a new telegram, a
    /// button pressed again, however close to the last: one receiver cannot hear one
    /// transmission twice. The time alone cannot tell: telegrams the kernel kept while the agent
    /// did not read (a start that waits for its outbox) are all heard when they are read, and two
    /// presses 5 s apart looked like one press and its copy; the second alarm was lost
    /// (Benchmarks/reliability.py card-hangs-at-start with the stream going through the wait).
    /// A sensor the hub hears only through repeaters still has its presses within a second of
    /// each other taken as copies: nothing in the telegram tells them apart.
    public mutating func handle(_ t: ESP3Telegram, at time: WallTime, receiver: String = "") -> Heard {
        guard let sender = t.senderID, let rorg = t.rorg else { return Heard(telegram: t, sensor: nil, reading: nil, repeated: false) }
        let key = "\(sender) \(rorg) \(Hex.string(t.payload))"
        let repeated = recent[key].map { last in
            time - last.time < .seconds(1) && (t.repeaterCount != 0 || last.receiver != receiver)
        } ?? false
        // The window runs from the original, not from the latest copy: repeaters' copies come
        // within it, and copies of copies do not stretch it.
        if !repeated { recent[key] = (time, receiver) }
        if recent.count > 512 { recent = recent.filter { time - $0.value.time < .seconds(1) } }
        let sensor = sensors[sender]
        var heard = Heard(telegram: t, sensor: sensor?.id, reading: nil, repeated: repeated)
        if !repeated, let sensor, let binding = sensor.enocean {
            if let values = EEP.reading(t, eep: binding.eep, role: sensor.role) {
                heard.reading = Reading(sensor: sensor.id, receivedAt: time, values: values)
            } else {
                heard.misfit = EEP.misfit(t, eep: binding.eep)
            }
        }
        return heard
    }
}
