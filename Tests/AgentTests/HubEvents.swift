import Outbox
import Synchronization
@testable import Agent
import VaktpostCore

/// What the daemon does with an event of the hub, for tests without a daemon: one event factory
/// behind a lock, straight into the outbox, then `stored` (which wakes the delivery lanes).
final class HubEvents: Sendable {
    private let factory: Mutex<EventFactory>
    let outbox: LockedOutbox
    let clock: HubClock
    let stored: @Sendable () -> Void

    init(outbox: LockedOutbox, clock: HubClock, stored: @escaping @Sendable () -> Void = {}) {
        self.outbox = outbox
        self.clock = clock
        self.stored = stored
        let stamp = clock.stamp
        factory = Mutex(EventFactory(rng: SystemRandomNumberGenerator(), stamp: stamp))
    }

    @discardableResult
    func raise(_ type: EventType, _ state: EventState = .active, correlation: EventID? = nil, data: [(String, JSONValue)] = []) -> EventID? {
        let now = clock.now()
        let (id, events) = factory.withLock { f in
            let id = f.hubEvent(type, state, at: now, correlation: correlation, data: data)
            return (id, f.take())
        }
        do {
            try outbox.with { _ = try $0.append(events) }
        } catch {
            return nil
        }
        stored()
        return id
    }
}
