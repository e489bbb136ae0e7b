#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Synchronization

/// A loop on its own dispatch queue, for adapters whose blocking calls (`poll`, `read`) must never
/// run on the Swift concurrency pool. `stop()` asks the loop to end and waits until it has.
public final class BackgroundLoop: Sendable {
    private let stopped = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    /// Cuts a `sleep` short: signalled by `requestStop()` and `wake()`, at most once pending.
    private let alarmClock = DispatchSemaphore(value: 0)
    private let woken = Atomic<Bool>(false)
    private let started = Atomic<Bool>(false)
    private let queue: DispatchQueue

    public init(label: String) {
        queue = DispatchQueue(label: label)
    }

    /// Runs `body` once on the loop's queue; `body` checks `isStopped` between blocking steps.
    public func start(_ body: @escaping @Sendable () -> Void) {
        started.store(true, ordering: .releasing)
        queue.async { [finished] in
            body()
            finished.signal()
        }
    }

    /// Returns at once for a loop never started (a daemon whose start failed halfway must
    /// still be able to stop).
    public func stop() {
        requestStop()
        guard started.load(ordering: .acquiring) else { return }
        finished.wait()
    }

    /// Asks the loop to end without waiting, so several loops can wind down at once.
    public func requestStop() {
        // Releasing: what the caller set before asking (a receiver's keepingPort) is seen by a
        // loop that sees it stopped.
        stopped.store(true, ordering: .releasing)
        wake()
    }

    /// Ends the current (or next) `sleep` early: there is new work.
    public func wake() {
        if !woken.exchange(true, ordering: .acquiringAndReleasing) { alarmClock.signal() }
    }

    public var isStopped: Bool { stopped.load(ordering: .acquiring) }

    /// Sleeps up to `duration`, or until `stop()` or `wake()` (then true). One blocking wait,
    /// not a poll: an idle hub should not wake up for nothing (issue 9 measures its idle CPU).
    @discardableResult
    public func sleep(_ duration: Duration) -> Bool {
        guard duration > .zero, !isStopped else { return isStopped }
        let (seconds, attoseconds) = duration.components
        let nanoseconds = seconds >= Int64(Int.max / 1_000_000_000) ? Int.max : Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
        guard alarmClock.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success else { return false }
        woken.store(false, ordering: .releasing)
        return true
    }
}
