import Dispatch
import Outbox
import Synchronization
import VaktpostCore
import VaktpostPosix

/// Opening the outbox at start, on a thread of its own. Opening reads all of it (`quick_check`),
/// and a card that hangs in its firmware holds the reading thread in `pread` for as long as it
/// likes: the start waits for it only so long (`wait(upTo:)`), then runs from a stand-in on tmpfs
/// so that alarms go out meanwhile, and learns later (`late`) how the open ended: the daemon then
/// restarts onto the outbox, and that start takes the stand-in in.
///
/// Why not a timeout alone: a healthy card with an outage's backlog and a cold cache takes
/// seconds too. Given up on for good, its backlog would wait for the next restart.
final class OutboxOpening: Sendable {
    /// The outbox the start waited for, crossing from the opening thread once, under `state`'s
    /// lock: nothing else holds it until then.
    struct Opened: @unchecked Sendable { let outbox: Outbox }

    /// How an open the start stopped waiting for ended. The outbox itself is closed by then, on
    /// the opening thread (closing writes to the card, and the rules' loop must not wait for it):
    /// the restart opens it again, from a warm cache.
    struct Late: Sendable, Equatable {
        var took: Duration
        /// Why it failed; nil when it opened.
        var failure: String?
        /// Read before this close marked the outbox clean.
        var uncleanStop: UncleanStop?
    }

    private enum State {
        case opening
        case given(Result<Opened, any Error>)
        case abandoned
        case late(Late)
        case taken
    }

    private let state = Mutex<State>(.opening)
    /// Whether the opening thread is out of the open, opened or failed: until then a restart
    /// (exec) or an exit of the process waits for it, a thread inside a read not being killable.
    let returned = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    private let began = SystemClock.boottime()

    /// Starts `open` on a thread of its own: a dispatch queue of its own, since the global
    /// queues' threads may all be busy, and this one may not come back for minutes.
    init(_ open: @escaping @Sendable () throws -> Outbox) {
        DispatchQueue(label: "vaktpost.outbox.open").async { [self] in
            let result = Result { Opened(outbox: try open()) }
            let waitedFor = state.withLock { s -> Bool in
                guard case .abandoned = s else {
                    s = .given(result)
                    return true
                }
                return false
            }
            if !waitedFor {
                var late = Late(took: .nanoseconds(Int64(SystemClock.boottime() &- began)))
                switch result {
                case .success(let opened):
                    let box = opened.outbox
                    late.uncleanStop = UncleanStop(of: box)
                    try? box.close()
                case .failure(let error):
                    late.failure = "\(error)"
                }
                state.withLock { $0 = .late(late) }
            }
            returned.store(true, ordering: .releasing)
            done.signal()
        }
    }

    /// The outbox if it opened within `limit`; throws what the open threw; nil if it has not
    /// returned by then: from then on, how it ends is for `late`.
    func wait(upTo limit: Duration) throws -> Outbox? {
        _ = done.wait(timeout: .now() + .nanoseconds(Int(limit.nanoseconds)))
        let given = state.withLock { s -> Result<Opened, any Error>? in
            guard case .given(let result) = s else {
                s = .abandoned
                return nil
            }
            s = .taken
            return result
        }
        return try given?.get().outbox
    }

    /// How an open given up on ended, once: nil while it runs, and after it was taken.
    func late() -> Late? {
        state.withLock { s in
            guard case .late(let late) = s else { return nil }
            s = .taken
            return late
        }
    }
}

/// What a start says of an outbox the last run left without a clean stop
/// (`HubDaemon.raiseUncleanStart`): that run's boot id (did the hub restart under it?) and when
/// it was last alive. Read before this run writes its own.
struct UncleanStop: Sendable, Equatable {
    var previousBoot: String?
    var lastAlive: String?

    /// Nil when the last run stopped cleanly.
    init?(of box: Outbox) {
        guard box.startedAfterUncleanStop else { return nil }
        previousBoot = try? box.note("boot_id")
        lastAlive = try? box.note("last_alive")
    }
}
