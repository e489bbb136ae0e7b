/// Notices a sensor sending far more readings than any real one does: a broken sensor
/// re-sending in a loop, a stuck button, or someone replaying its radio frames. Real bed, door
/// and fall sensors send a few readings a minute; BTHome devices at most a few a second.
///
/// Counted in fixed windows: a window with more than `limit` readings raises `sensor.flooding`
/// (technical, once per episode, with the rate); the first window at or under a quarter of the
/// limit (or with nothing heard) clears it with how many readings the episode had. The readings
/// themselves are all still handled: a flooding fall sensor may still report a real fall, and
/// the outbox's capacity policy is what keeps the disk bounded. Pure.
public struct FloodWatch: Sendable, Equatable {
    public var limit: Int
    public var window: Duration

    struct Count: Sendable, Equatable {
        var start: WallTime
        var readings: Int
    }

    struct Episode: Sendable, Equatable {
        var eventID: EventID
        var readings: Int
    }

    var counts: [SensorID: Count] = [:]
    var episodes: [SensorID: Episode] = [:]

    /// 100 readings in 5 s (20 a second, sustained) is a flood.
    public init(limit: Int = 100, window: Duration = .seconds(5)) {
        self.limit = limit
        self.window = window
    }

    public var flooding: Set<SensorID> { Set(episodes.keys) }

    /// One reading from `sensor` at `time`.
    public mutating func heard(_ sensor: SensorConfig, at time: WallTime, events: inout EventFactory) {
        close(sensor, before: time, events: &events)
        counts[sensor.id, default: Count(start: time, readings: 0)].readings += 1
        if var episode = episodes[sensor.id] {
            episode.readings += 1
            episodes[sensor.id] = episode
        }
    }

    /// Closes windows that ended with nothing heard since (a flood that simply stopped).
    public mutating func tick(at time: WallTime, sensors: [SensorID: SensorConfig], events: inout EventFactory) {
        for id in counts.keys.sorted(by: { $0.rawValue < $1.rawValue }) where episodes[id] != nil || time - counts[id]!.start >= window {
            if let sensor = sensors[id] { close(sensor, before: time, events: &events) }
        }
    }

    /// When the window of `sensor` is over by `time`: judge it and start the next.
    mutating func close(_ sensor: SensorConfig, before time: WallTime, events: inout EventFactory) {
        guard let count = counts[sensor.id] else { return }
        let elapsed = time - count.start
        guard elapsed >= window || elapsed < .zero else { return }
        counts[sensor.id] = nil
        let perSecond = Double(count.readings) / (Double(window.nanoseconds) / 1e9)
        if count.readings > limit, episodes[sensor.id] == nil {
            let id = events.emit(.sensorFlooding, .active, at: count.start + window, sensor: sensor, rule: nil, data: [
                ("readingsPerSecond", .int(Int64(perSecond.rounded()))), ("limitPerSecond", .int(Int64((Double(limit) / (Double(window.nanoseconds) / 1e9)).rounded()))),
            ])
            episodes[sensor.id] = Episode(eventID: id, readings: count.readings)
        } else if let episode = episodes[sensor.id], count.readings <= limit / 4 || elapsed >= window * 2 {
            events.emit(.sensorFlooding, .cleared, at: time, sensor: sensor, rule: nil, correlation: episode.eventID,
                        data: [("readings", .int(Int64(episode.readings)))])
            episodes[sensor.id] = nil
        }
        // While a flood lasts there is always an open window, so that silence ends it too.
        if episodes[sensor.id] != nil { counts[sensor.id] = Count(start: time, readings: 0) }
    }
}
