import Dispatch
import VaktpostCore
import VaktpostPosix

/// A step of the start that may block on the SD card (opening the outbox reads all of it): if
/// it has not returned after `after`, that is said (`waiting`), and again every `every`, until it
/// does; then `returned` says how long it took. A card that hangs in its firmware holds the
/// thread in `pread` for as long as it likes, and without this the agent said nothing at all
/// while no alarm could go out.
enum SlowStep {
    static func watch<T>(after: Duration, every: Duration, waiting: @escaping @Sendable (Duration) -> Void,
                         returned: (Duration) -> Void, _ work: () throws -> T) rethrows -> T {
        let began = SystemClock.boottime()
        let elapsed: @Sendable () -> Duration = { .nanoseconds(Int64(SystemClock.boottime() &- began)) }
        let finished = DispatchSemaphore(value: 0)
        let watcher = DispatchGroup()
        // A queue of its own (a thread of its own): the global queues' threads may all be busy.
        DispatchQueue(label: "vaktpost.slow-step").async(group: watcher) {
            var next = after
            while finished.wait(timeout: .now() + .nanoseconds(Int(next.nanoseconds))) == .timedOut {
                waiting(elapsed())
                next = every
            }
        }
        defer {
            let took = elapsed()
            finished.signal()
            watcher.wait()  // no word of waiting after the word that it returned
            if took >= after { returned(took) }
        }
        return try work()
    }
}
