import Synchronization
import VaktpostPosix

/// What the receivers heard, in the order they heard it, until the rules take it in on a
/// thread of their own. The threads that read the serial ports and the HCI socket only put
/// here and go back to reading: they never wait for the outbox.
///
/// Before, a reader applied each telegram itself, and committing its events waited for the
/// disk. On an SD card that stalls its syncs for a second (garbage collection), the ports went
/// unread for seconds: the kernel's buffers fill (and drop), and telegrams read late all carry
/// the time of the late read, so a button pressed twice 5 s apart looked like one press and a
/// repeater's copy of it; the second alarm was lost (Benchmarks/reliability.py disk-stalls).
/// Now each is stamped when it arrives, and waits here instead.
final class Intake: Sendable {
    typealias Work = @Sendable () -> Void

    struct Queue {
        var items: [Work] = []
        /// Where the items begin: the oldest dropped are skipped, not moved out one by one.
        var head = 0
        /// Dropped since the last report: the queue was full (the rules were held up for that long).
        var dropped = 0
    }

    let queue = Mutex(Queue())
    let loop: BackgroundLoop
    /// 10,000 telegrams: ten seconds of a sensor flooding at 1,000 a second, far more of a home's.
    let limit: Int

    init(label: String, limit: Int = 10_000) {
        loop = BackgroundLoop(label: label)
        self.limit = limit
    }

    /// From a reader's thread: never waits (beyond the queue's own lock). When the queue is
    /// full the oldest goes, counted, as the kernel's buffer would have dropped the newest.
    func put(_ work: @escaping Work) {
        queue.withLock { q in
            if q.items.count - q.head >= limit {
                q.head += 1
                q.dropped += 1
                if q.head >= limit {
                    q.items.removeFirst(q.head)
                    q.head = 0
                }
            }
            q.items.append(work)
        }
        loop.wake()
    }

    /// Runs what was put, in order, on the intake's thread until `stop()`; `dropped` hears how
    /// many were dropped for a full queue.
    func start(dropped: @escaping @Sendable (Int) -> Void) {
        loop.start { [self] in
            while true {
                let (batch, lost) = queue.withLock { q in
                    defer { (q.items, q.head, q.dropped) = ([], 0, 0) }
                    return (q.items[q.head...], q.dropped)
                }
                if lost > 0 { dropped(lost) }
                for work in batch { work() }
                // Stopped only once empty: what was heard before the readers stopped is taken in.
                if batch.isEmpty {
                    if loop.isStopped { return }
                    loop.sleep(.seconds(1))
                }
            }
        }
    }

    /// Waits until everything put before is taken in. Call after the readers have stopped.
    func stop() {
        loop.stop()
    }

    var waiting: Int { queue.withLock { $0.items.count - $0.head } }
}
