import Dispatch
import Outbox
import Synchronization

/// The bulk lane's outbox work, done while its request is on the way rather than between
/// requests: the settle of the batch answered before, then the next batch of a backlog. Draining
/// a backlog, the lane used to alternate with the platform (make a batch, wait for the answer,
/// settle it, make the next), each idle while the other worked; now the platform stores one
/// batch while the agent settles the last and makes the next (`Benchmarks/drain.py`).
///
/// One request is still in flight at a time, so nothing changes for the platform. A batch made
/// ahead is stored like any other: if the lane does not send it next (its request failed, the
/// agent stopped), it is found again as a stored batch and sent under the same key.
final class BulkAhead: Sendable {
    /// What one round came to: the next batch, and why the settle failed, if it did.
    struct Round: Sendable {
        var next: OutboxBatch?
        var settleError: String?
    }

    private let queue = DispatchQueue(label: "vaktpost.uplink.bulk-ahead")
    private let running = DispatchGroup()
    private let last = Mutex(Round())

    /// Begins a round beside the request: `settle` (the batch answered before), then `next`.
    func begin(settle: (@Sendable () throws -> Void)?, next: @escaping @Sendable () throws -> OutboxBatch?) {
        running.enter()
        queue.async { [self] in
            var round = Round()
            if let settle {
                do { try settle() } catch { round.settleError = "\(error)" }
            }
            // A batch that cannot be made now is made by the lane itself, as before.
            round.next = try? next()
            last.withLock { $0 = round }
            running.leave()
        }
    }

    /// Waits for the round begun last, and says what it came to (an empty round if none).
    func collect() -> Round {
        running.wait()
        return last.withLock { r in
            defer { r = Round() }
            return r
        }
    }
}
