import Synchronization
import VaktpostCore
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
        var items: [(heard: WallTime, work: Work)] = []
        /// Where the items begin: taken and dropped ones are skipped, not moved out one by one.
        var head = 0
        /// When the one being taken in was heard.
        var taking: WallTime?
        /// Dropped since the last report: the queue was full (the rules were held up for that long).
        var dropped = 0

        var waiting: Int { items.count - head }

        mutating func skip() {
            head += 1
            if head == items.count {
                items.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 4096, head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
            }
        }
    }

    let queue = Mutex(Queue())
    let loop: BackgroundLoop
    /// 10,000 telegrams: ten seconds of a sensor flooding at 1,000 a second, far more of a home's.
    let limit: Int

    init(label: String, limit: Int = 10_000) {
        loop = BackgroundLoop(label: label)
        self.limit = limit
    }

    /// From a reader's thread, with when it was heard: never waits (beyond the queue's own
    /// lock). When the queue is full the oldest goes, counted, as the kernel's buffer would
    /// have dropped the newest.
    func put(heard: WallTime, _ work: @escaping Work) {
        queue.withLock { q in
            if q.waiting >= limit {
                q.skip()
                q.dropped += 1
            }
            q.items.append((heard, work))
        }
        loop.wake()
    }

    /// When the oldest reading not yet taken in was heard: the rules' timers must not run past
    /// it (a bed pad's "back in bed" heard at 29 minutes, waiting behind a commit the disk
    /// holds up, must cancel the 30-minute alarm, not come after it).
    var oldestWaiting: WallTime? {
        queue.withLock { q in q.taking ?? (q.waiting > 0 ? q.items[q.head].heard : nil) }
    }

    /// Takes in what was put, in order, on the intake's thread until `stop()`; `dropped` hears
    /// how many were dropped for a full queue.
    func start(dropped: @escaping @Sendable (Int) -> Void) {
        loop.start { [self] in
            while true {
                let (next, lost) = queue.withLock { q in
                    defer { q.dropped = 0 }
                    guard q.waiting > 0 else {
                        q.taking = nil
                        return (nil as Work?, q.dropped)
                    }
                    let item = q.items[q.head]
                    q.skip()
                    q.taking = item.heard
                    return (item.work, q.dropped)
                }
                if lost > 0 { dropped(lost) }
                if let next {
                    next()
                    continue
                }
                // Stopped only once empty: what was heard before the readers stopped is taken in.
                if loop.isStopped { return }
                loop.sleep(.seconds(1))
            }
        }
    }

    /// Waits until everything put before is taken in. Call after the readers have stopped.
    func stop() {
        loop.stop()
    }
}
