/// How the uplink waits between attempts (research/uplink.md §3.6): exponential backoff with
/// full jitter, `sleep = random(0, min(cap, base · 2^attempt))`, never shorter than the
/// platform's `Retry-After`. Pure: the randomness is handed in.
public struct Backoff: Sendable, Equatable {
    public var base: Duration
    public var cap: Duration

    /// Alarms: start at 0.25 s, never wait more than 1 s, never give up. An alarm waiting is
    /// rare and one small request; how soon it arrives after the platform returns is what counts.
    public static let alarm = Backoff(base: .milliseconds(250), cap: .seconds(1))
    /// Batches: start at 2 s, up to 5 minutes.
    public static let bulk = Backoff(base: .seconds(2), cap: .seconds(300))

    public init(base: Duration, cap: Duration) {
        self.base = base
        self.cap = cap
    }

    /// The wait before attempt `attempt + 1` (attempt 0 is the first retry).
    public func delay(attempt: Int, retryAfter: Duration? = nil, using rng: inout some RandomNumberGenerator) -> Duration {
        let ceiling = min(cap.nanoseconds, base.nanoseconds << min(attempt, 30))
        let jittered = Duration.nanoseconds(Int64.random(in: 0...max(0, ceiling), using: &rng))
        guard let retryAfter else { return jittered }
        return max(jittered, retryAfter)
    }
}

/// What an HTTP answer means for the events in the request (research/uplink.md §3.4).
public enum DeliveryVerdict: Equatable, Sendable {
    /// 2xx: delivered (per-event results may still reject single events).
    case delivered
    /// 400/422 and other client errors: a request the platform will never take; dead-letter it.
    case reject
    /// 401/403: the hub's certificate is refused; raise `uplink.unauthorized`, retry slowly.
    case unauthorized
    /// 408/409/425/429/5xx and network errors: try again after the backoff.
    case retry

    public init(status: Int) {
        switch status {
        case 200..<300: self = .delivered
        case 401, 403: self = .unauthorized
        case 408, 409, 425, 429, 500..<600: self = .retry
        default: self = .reject
        }
    }
}

public enum RetryAfter {
    /// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3), relative to `now`.
    public static func parse(_ value: String, now: WallTime) -> Duration? {
        let v = String(value.trimmingWhitespace())
        if let seconds = Int64(v), seconds >= 0 { return .seconds(min(seconds, 86_400)) }
        guard let date = httpDate(v) else { return nil }
        return max(.zero, date - now)
    }

    /// IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
    static func httpDate(_ s: String) -> WallTime? {
        let parts = s.split(separator: " ")
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard parts.count == 6, parts[5] == "GMT", let day = Int(parts[1]), let month = months.firstIndex(of: String(parts[2])),
            let year = Int(parts[3])
        else { return nil }
        let t = parts[4].split(separator: ":").compactMap { Int($0) }
        guard t.count == 3 else { return nil }
        return RFC3339.parse("\(RFC3339.pad(year, 4))-\(RFC3339.pad(month + 1, 2))-\(RFC3339.pad(day, 2))T\(RFC3339.pad(t[0], 2)):\(RFC3339.pad(t[1], 2)):\(RFC3339.pad(t[2], 2))Z")?.time
    }
}
