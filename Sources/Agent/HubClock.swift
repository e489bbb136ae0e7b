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
    /// backoff): the same as `now` except on a simulated timeline (demo, tests). The daemon's
    /// runs on boot time, so that a wall-clock step does not stretch or shrink a wait.
    public let elapsed: @Sendable () -> WallTime
    /// The system's wall clock as it is right now, steps and all: for re-stamping events when
    /// it synchronises and for the audit log.
    public let wall: @Sendable () -> WallTime

    public init(zone: TimeZoneRules, bootID: String, now: @escaping @Sendable () -> WallTime,
                boottime: @escaping @Sendable () -> UInt64, synced: @escaping @Sendable () -> Bool, elapsed: (@Sendable () -> WallTime)? = nil,
                wall: (@Sendable () -> WallTime)? = nil) {
        self.zone = zone
        self.bootID = bootID
        self.now = now
        self.elapsed = elapsed ?? now
        self.wall = wall ?? elapsed ?? now
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
