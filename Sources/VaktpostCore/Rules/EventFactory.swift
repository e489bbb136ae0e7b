/// Makes the events one engine step produces: new ids, the three-way time stamp, the codes.
///
/// The id randomness and the clock stamp come from outside, so the same scenario with the same
/// seed gives byte-identical output, and production gets real randomness and the real boot clock.
public struct EventFactory {
    public internal(set) var rng: any RandomNumberGenerator
    let stamp: (WallTime) -> EventTime
    public private(set) var events: [Event] = []

    public init(rng: any RandomNumberGenerator, stamp: @escaping (WallTime) -> EventTime) {
        self.rng = rng
        self.stamp = stamp
    }

    /// Hands over the events made so far and starts a new batch.
    public mutating func take() -> [Event] {
        defer { events = [] }
        return events
    }

    /// An event of the hub itself (no sensor, no rule): `ble.adapter_unavailable`, `agent.restarted`, ...
    @discardableResult
    public mutating func hubEvent(_ type: EventType, _ state: EventState, at time: WallTime, correlation: EventID? = nil, data: [(String, JSONValue)] = []) -> EventID {
        emit(type, state, at: time, sensor: nil, rule: nil, correlation: correlation, data: data)
    }

    /// An alarm made again from what could be read of a stored one whose bytes the card damaged:
    /// its type, sensor and time. `active` whatever it was (its state was in the damaged bytes),
    /// so that an operator looks. Its correlation is the damaged one's id, the one the alarm's
    /// later `update` and `cleared` carry, so that they end the remade alarm on the platform;
    /// `rule` when the rules still have it open. Nil for a type the catalog does not know
    /// (damaged too).
    public mutating func remade(_ type: EventType, from damaged: EventID, at time: WallTime, sensor: SensorConfig?, rule: RuleConfig?,
                                data: [(String, JSONValue)]) -> EventID? {
        guard EventCatalog.kind(of: type)?.eventClass == .alarm else { return nil }
        return emit(type, .active, at: time, sensor: sensor, rule: rule, correlation: damaged, data: data)
    }

    /// Records one event and returns its id. A `cleared`/`update` carries `correlation`, the id
    /// of the `active` event it belongs to; an `active` event correlates with itself.
    @discardableResult
    mutating func emit(
        _ type: EventType, _ state: EventState, at time: WallTime, sensor: SensorConfig?, rule: RuleConfig?,
        correlation: EventID? = nil, status: String? = nil, data: [(String, JSONValue)] = []
    ) -> EventID {
        guard let kind = EventCatalog.kind(of: type) else { preconditionFailure("event type \(type) is not in EventCatalog") }
        let id = EventID.v7(unixMilliseconds: time.millisecondsSinceEpoch, using: &rng)
        events.append(Event(
            eventID: id, eventClass: kind.eventClass, type: type, state: state, correlationID: correlation ?? id,
            priority: kind.priority, sensor: sensor?.id, room: sensor?.room, rule: rule?.id, occurredAt: stamp(time),
            codes: EventCatalog.codes(for: type, state: state, role: sensor?.role, room: sensor?.room, status: status),
            data: data))
        return id
    }

    /// Takes back events made in this batch: raised a second time while taking in the rules a
    /// stand-in ran (`RuleEngine.takeIn`), where the stand-in's own event stands.
    mutating func drop(_ ids: Set<EventID>) {
        guard !ids.isEmpty else { return }
        events.removeAll { ids.contains($0.eventID) }
    }
}
