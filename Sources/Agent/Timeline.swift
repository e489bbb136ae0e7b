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

    /// Follows the wall clock when it becomes trustworthy or was set on purpose; the size of
    /// the jump when it moved, nil when not.
    @discardableResult
    public func follow(synced: Bool) -> Duration? {
        guard !isSimulated else { return nil }
        let current = now()
        let real = wall()
        return anchor.withLock { a -> Duration? in
            defer { a.synced = synced }
            let drift = real - current
            let firstSync = synced && !a.synced
            guard firstSync || (synced && (drift > .seconds(60) || drift < .seconds(-60))) else { return nil }
            a = Anchor(wall: real, boot: boottime(), synced: synced)
            return drift
        }
    }
}
