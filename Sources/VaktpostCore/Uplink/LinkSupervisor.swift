/// Knows whether the hub can reach the platform: after three heartbeat intervals without one
/// successful exchange the link is lost (`uplink.lost`, stored and delivered when it returns);
/// the next success restores it (`uplink.restored`, with how long it was down). Pure.
public struct LinkSupervisor: Sendable, Equatable {
    public enum Change: Equatable, Sendable {
        case lost(since: WallTime)
        case restored(downFor: Duration)
    }

    public var heartbeat: Duration
    public private(set) var lastSuccess: WallTime
    public private(set) var lostSince: WallTime?

    public init(heartbeat: Duration, startedAt: WallTime) {
        self.heartbeat = heartbeat
        self.lastSuccess = startedAt
    }

    public mutating func succeeded(at time: WallTime) -> Change? {
        lastSuccess = max(lastSuccess, time)
        guard let since = lostSince else { return nil }
        lostSince = nil
        return .restored(downFor: time - since)
    }

    public mutating func tick(at time: WallTime) -> Change? {
        guard lostSince == nil, time - lastSuccess >= heartbeat * 3 else { return nil }
        lostSince = lastSuccess
        return .lost(since: lastSuccess)
    }

    /// When `tick` next has something to decide.
    public var nextCheck: WallTime { lastSuccess + heartbeat * 3 }
}
