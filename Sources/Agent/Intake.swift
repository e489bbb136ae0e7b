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
        /// In the order heard; a dropped one stays as a gap (no work) until the head passes it.
        /// The head never rests on a gap: what it points at, if anything, waits.
        var items: [(heard: WallTime, source: String, work: Work?)] = []
        /// Where the items begin: taken and dropped ones are skipped, not moved out one by one.
        var head = 0
        /// Items not yet taken in nor dropped, in all and by source.
        var waiting = 0
        var bySource: [String: Int] = [:]
        /// When the one being taken in was heard.
        var taking: WallTime?
        /// Dropped since the last report: the queue was full (the rules were held up for that long).
        var dropped = 0
        /// Where the last drop was, for its source: everything of that source before it is gone,
        /// so the next drop of the same source looks from there (a flood drops at every put).
        var lastDrop: (source: String, at: Int)?

        mutating func append(_ heard: WallTime, _ source: String, _ work: @escaping Work) {
            items.append((heard, source, work))
            waiting += 1
            bySource[source, default: 0] += 1
        }

        /// The next item to take in, removed; nil when none waits.
        mutating func take() -> (heard: WallTime, work: Work)? {
            guard head < items.count, let work = items[head].work else { return nil }
            let item = items[head]
            skip()
            skipGaps()
            forget(item.source)
            return (item.heard, work)
        }

        /// Full: the oldest of the source with the most waiting goes. A sensor flooding the
        /// queue (a stuck contact, a faulty pad) loses its own readings, not the fall sensor's
        /// alarm that happened to be heard before them; with no flood, the busiest sender pays.
        mutating func dropOne() {
            guard let victim = bySource.max(by: { $0.value < $1.value })?.key else { return }
            var i = head
            if let last = lastDrop, last.source == victim { i = max(head, last.at + 1) }
            while i < items.count && (items[i].work == nil || items[i].source != victim) { i += 1 }
            guard i < items.count else { return }
            items[i].work = nil
            lastDrop = (victim, i)
            forget(victim)
            dropped += 1
            skipGaps()
            // Gaps the head has not reached yet: squeezed out once the array holds more than
            // twice what waits, so that a long stall under a flood does not grow it without bound.
            if items.count - head > 2 * max(waiting, 1) + 64 {
                items = items[head...].filter { $0.work != nil }
                head = 0
                lastDrop = nil
            }
        }

        var firstWaiting: WallTime? { head < items.count ? items[head].heard : nil }

        mutating func forget(_ source: String) {
            waiting -= 1
            if let n = bySource[source], n > 1 { bySource[source] = n - 1 } else { bySource[source] = nil }
        }

        mutating func skipGaps() {
            while head < items.count && items[head].work == nil { skip() }
        }

        mutating func skip() {
            head += 1
            if head == items.count {
                items.removeAll(keepingCapacity: true)
                head = 0
                lastDrop = nil
            } else if head >= 4096, head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
                lastDrop = nil
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

    /// From a reader's thread, with when it was heard and who sent it (a sensor's address or
    /// id; a receiver's condition): never waits (beyond the queue's own lock). When the queue is
    /// full, the oldest from the source with the most waiting goes, counted.
    func put(heard: WallTime, from source: String, _ work: @escaping Work) {
        queue.withLock { q in
            if q.waiting >= limit { q.dropOne() }
            q.append(heard, source, work)
        }
        loop.wake()
    }

    /// When the oldest reading not yet taken in was heard: the rules' timers must not run past
    /// it (a bed pad's "back in bed" heard at 29 minutes, waiting behind a commit the disk
    /// holds up, must cancel the 30-minute alarm, not come after it).
    var oldestWaiting: WallTime? {
        queue.withLock { q in q.taking ?? q.firstWaiting }
    }

    /// Takes in what was put, in order, on the intake's thread until `stop()`; `dropped` hears
    /// how many were dropped for a full queue.
    func start(dropped: @escaping @Sendable (Int) -> Void) {
        loop.start { [self] in
            while true {
                let (next, lost) = queue.withLock { q in
                    defer { q.dropped = 0 }
                    guard let item = q.take() else {
                        q.taking = nil
                        return (nil as Work?, q.dropped)
                    }
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
