import Outbox
import Synchronization
@testable import Agent
import VaktpostCore

/// What the daemon does with an event of the hub, for tests without a daemon: one event factory
/// behind a lock, handed to the outbox, then `stored` (which wakes the delivery lanes).
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
        // As the daemon's rules do: one hand-over at a time (to the outbox's writer once started).
        let (id, handed) = factory.withLock { f in
            let id = f.hubEvent(type, state, at: now, correlation: correlation, data: data)
            return (id, outbox.hand(f.take(), ruleState: nil))
        }
        guard handed != .refused else { return nil }
        stored()
        return id
    }
}
