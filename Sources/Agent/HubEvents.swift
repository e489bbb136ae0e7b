import Outbox
import Synchronization
import VaktpostCore
import VaktpostPosix

/// The hub's three clocks, read together for every event (docs/uplink.md, Time): wall time in
/// the configured zone, `CLOCK_BOOTTIME` with the boot id, and whether the wall clock is synced.
public struct HubClock: Sendable {
    public let zone: TimeZoneRules
    public let bootID: String
    public let now: @Sendable () -> WallTime
    public let boottime: @Sendable () -> UInt64
    public let synced: @Sendable () -> Bool
    /// Real time, for waiting and measuring (acknowledgement deadlines, link supervision,
    /// backoff): the same as `now` except on a simulated timeline (demo, tests).
    public let elapsed: @Sendable () -> WallTime

    public init(zone: TimeZoneRules, bootID: String, now: @escaping @Sendable () -> WallTime,
                boottime: @escaping @Sendable () -> UInt64, synced: @escaping @Sendable () -> Bool, elapsed: (@Sendable () -> WallTime)? = nil) {
        self.zone = zone
        self.bootID = bootID
        self.now = now
        self.elapsed = elapsed ?? now
        self.boottime = boottime
        self.synced = synced
    }

    /// The machine's own clocks.
    public static func system(zone: TimeZoneRules) -> HubClock {
        HubClock(zone: zone, bootID: SystemClock.bootID(), now: { WallTime(nanosecondsSinceEpoch: SystemClock.now()) },
                 boottime: { SystemClock.boottime() }, synced: { SystemClock.isSynchronized() })
    }

    /// The stamp of an event that happened at `wall` (now, or a moment ago).
    public func stamp(_ wall: WallTime) -> EventTime {
        let ago = max(0, (now() - wall).nanoseconds)
        return EventTime(wall: wall, utcOffsetSeconds: zone.utcOffset(at: wall), boottimeNanoseconds: boottime() &- UInt64(min(Int64(boottime()), ago)),
                         bootID: bootID, clockSynced: synced())
    }
}

/// Makes and stores the hub's own technical events from any thread: one event factory behind a
/// lock, straight into the outbox, then `stored` (which wakes the delivery lanes).
public final class HubEvents: Sendable {
    private let factory: Mutex<EventFactory>
    let outbox: LockedOutbox
    let clock: HubClock
    let stored: @Sendable () -> Void

    public init(outbox: LockedOutbox, clock: HubClock, stored: @escaping @Sendable () -> Void = {}) {
        self.outbox = outbox
        self.clock = clock
        self.stored = stored
        let stamp = clock.stamp
        factory = Mutex(EventFactory(rng: SystemRandomNumberGenerator(), stamp: stamp))
    }

    /// Stores one event of the hub; its id, or nil when the outbox refused it (the error is the
    /// outbox's own: the disk is full and memory holds all it may).
    @discardableResult
    public func raise(_ type: EventType, _ state: EventState = .active, correlation: EventID? = nil, data: [(String, JSONValue)] = []) -> EventID? {
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
