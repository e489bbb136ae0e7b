/// Keeps BLE input from failing silently. The scanner tells it what happened (socket opened or
/// failed, report received, time passed); it answers with what to do: restart the scan, reopen
/// the socket, raise or clear `ble.adapter_unavailable`. Pure, so every timing is tested.
///
/// - A socket that cannot be opened is retried once at once, then raised with the reason and
///   retried with backoff (1 s doubling to 30 s) for as long as the agent runs.
/// - A scan that is open but silent for `silentAfter` is restarted once; silent for another
///   `silentAfter`, it is raised ("no advertising reports"), and the scan keeps being restarted.
/// - Known causes (no Bluetooth in the kernel, missing CAP_NET_RAW) are raised at once.
/// - The first report after a raise clears it.
public struct BLESupervisor: Sendable {
    public enum Action: Equatable, Sendable {
        case restartScan
        case reopen(after: Duration)
        case raise(reason: String)
        case clear
    }

    public let silentAfter: Duration
    /// The reason currently raised, if any.
    public private(set) var raised: String?
    var quietSince: WallTime?
    var restartedAt: WallTime?
    var failures = 0

    public init(silentAfter: Duration) {
        self.silentAfter = silentAfter
    }

    /// The socket could not be opened or set up. `certain` causes (no Bluetooth in this kernel,
    /// no adapter) are raised at once; others after one quick retry.
    public mutating func openFailed(_ reason: String, certain: Bool) -> [Action] {
        failures += 1
        quietSince = nil
        var actions: [Action] = []
        if raised == nil && (certain || failures >= 2) {
            raised = reason
            actions.append(.raise(reason: reason))
        }
        let backoff = failures <= 1 ? Duration.zero : .seconds(min(30, 1 << min(failures - 2, 5)))
        actions.append(.reopen(after: backoff))
        return actions
    }

    /// The scan is running (again). A cause that makes it deaf anyway is raised at once.
    public mutating func scanStarted(at time: WallTime, deafBecause reason: String? = nil) -> [Action] {
        failures = 0
        quietSince = time
        restartedAt = nil
        if let reason, raised == nil {
            raised = reason
            return [.raise(reason: reason)]
        }
        return []
    }

    public mutating func reportReceived(at time: WallTime) -> [Action] {
        quietSince = time
        restartedAt = nil
        guard raised != nil else { return [] }
        raised = nil
        return [.clear]
    }

    public mutating func tick(at time: WallTime) -> [Action] {
        guard let quiet = quietSince else { return [] }
        if let restarted = restartedAt {
            guard time - restarted >= silentAfter else { return [] }
            restartedAt = time
            if raised == nil {
                let reason = "no advertising reports for \(DurationText.format(time - quiet)), not even after restarting the scan"
                raised = reason
                return [.raise(reason: reason), .restartScan]
            }
            return [.restartScan]
        }
        guard time - quiet >= silentAfter else { return [] }
        restartedAt = time
        return [.restartScan]
    }

    /// When `tick` next has something to decide.
    public func nextTick() -> WallTime? {
        guard let quiet = quietSince else { return nil }
        return (restartedAt ?? quiet) + silentAfter
    }
}
