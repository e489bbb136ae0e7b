import Synchronization
import VaktpostCore
import VaktpostPosix

/// The time the daemon runs on: wall time as it was when last anchored, moved forward by
/// `CLOCK_BOOTTIME`, so a wall-clock step (NTP, a technician's `date -s`) does not fire rule
/// timers early or late. It is re-anchored once when the clock first synchronises (before that
/// the wall time is not worth keeping) and when a synchronised clock has moved more than a
/// minute away (logged: the wall clock was set on purpose).
///
/// For the demo and tests it runs simulated: from a given start, `speed` times faster.
public final class Timeline: Sendable {
    struct Anchor {
        var wall: WallTime
        var boot: UInt64
        var synced: Bool
        /// The wall clock's distance from the timeline when a step was last reported while
        /// unsynchronised (the timeline does not follow those; each is reported once).
        var noticed: Duration = .zero
    }

    /// A wall-clock step of more than a minute, for `clock.stepped`.
    public enum Step: Equatable, Sendable {
        /// The clock is synchronised, so the step was deliberate: the timeline moved with it.
        case followed(Duration)
        /// The clock is not synchronised: the timeline goes on by boot time, as before.
        case ignored(Duration)

        public var size: Duration { switch self { case .followed(let d), .ignored(let d): d } }
    }

    let anchor: Mutex<Anchor>
    public let speed: Double
    public let isSimulated: Bool
    let wall: @Sendable () -> WallTime
    let boottime: @Sendable () -> UInt64

    public init(start: WallTime? = nil, speed: Double = 1, wall: @escaping @Sendable () -> WallTime = { WallTime(nanosecondsSinceEpoch: SystemClock.now()) },
                boottime: @escaping @Sendable () -> UInt64 = { SystemClock.boottime() }, synced: Bool = true) {
        self.speed = speed
        self.isSimulated = start != nil || speed != 1
        self.wall = wall
        self.boottime = boottime
        anchor = Mutex(Anchor(wall: start ?? wall(), boot: boottime(), synced: synced))
    }

    public func now() -> WallTime {
        let a = anchor.withLock { $0 }
        let elapsed = Double(boottime() &- a.boot) * speed
        return a.wall + .nanoseconds(Int64(elapsed))
    }

    /// Follows the wall clock when it becomes trustworthy (first synchronisation: returns nil,
    /// that is the clock being set, not stepped) or was set on purpose (a synchronised clock
    /// moving more than a minute); reports a step of an unsynchronised clock without following it.
    @discardableResult
    public func follow(synced: Bool) -> Step? {
        guard !isSimulated else { return nil }
        let current = now()
        let real = wall()
        return anchor.withLock { a -> Step? in
            defer { a.synced = synced }
            let drift = real - current
            let minute = Duration.seconds(60)
            if synced && !a.synced {
                a = Anchor(wall: real, boot: boottime(), synced: synced)
                return nil
            }
            if synced, drift > minute || drift < .zero - minute {
                a = Anchor(wall: real, boot: boottime(), synced: synced)
                return .followed(drift)
            }
            let unnoticed = drift - a.noticed
            if !synced, unnoticed > minute || unnoticed < .zero - minute {
                a.noticed = drift
                return .ignored(unnoticed)
            }
            return nil
        }
    }
}
