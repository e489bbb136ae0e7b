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
    private let queue: DispatchQueue

    public init(label: String) {
        queue = DispatchQueue(label: label)
    }

    /// Runs `body` once on the loop's queue; `body` checks `isStopped` between blocking steps.
    public func start(_ body: @escaping @Sendable () -> Void) {
        queue.async { [finished] in
            body()
            finished.signal()
        }
    }

    public func stop() {
        requestStop()
        finished.wait()
    }

    /// Asks the loop to end without waiting, so several loops can wind down at once.
    public func requestStop() {
        stopped.store(true, ordering: .relaxed)
    }

    public var isStopped: Bool { stopped.load(ordering: .relaxed) }

    /// Sleeps up to `duration`, in steps short enough that `stop()` is not kept waiting.
    public func sleep(_ duration: Duration) {
        var left = duration
        while left > .zero && !isStopped {
            let step = min(left, .milliseconds(200))
            let (seconds, attoseconds) = step.components
            usleep(useconds_t(seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
            left -= step
        }
    }
}
