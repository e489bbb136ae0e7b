import Dispatch
import Synchronization
import VaktpostCore

/// A read of the card at start that a card which hangs may hold for minutes, on a thread of its
/// own and waited for at most `limit`: nil if it has not returned by then. The thread goes on,
/// its result dropped. For what the agent can start without (the BTHome counters); the outbox
/// has its own (`OutboxOpening`), since it is taken up again when it returns.
enum BoundedRead {
    private final class Slot<T: Sendable>: Sendable {
        let result = Mutex<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
    }

    static func run<T: Sendable>(within limit: Duration, label: String, _ work: @escaping @Sendable () throws -> T) -> Result<T, any Error>? {
        let slot = Slot<T>()
        DispatchQueue(label: label).async {
            let result = Result { try work() }
            slot.result.withLock { $0 = result }
            slot.done.signal()
        }
        _ = slot.done.wait(timeout: .now() + .nanoseconds(Int(limit.nanoseconds)))
        return slot.result.withLock { $0 }
    }
}
