#if canImport(Glibc)
import Glibc
#endif
import Outbox
import Synchronization
import VaktpostCore
import VaktpostPosix

/// Two faults of the disk leave events in the agent's memory only: a write that hangs (what the
/// rules hand over waits for the writer: readings, alarms sent from there, the rule state behind
/// them) and a disk that refuses writes (the outbox holds events, deliveries and follow-ups in
/// memory until it writes again). A stop writes them out, or spills them to the stand-in; a kill
/// (systemd's, past the stop's limit), a crash or the watchdog did not. So while either lasts, a
/// copy of what memory holds is kept at `path`, an outbox file on the runtime directory's tmpfs
/// beside the stand-in, rewritten as it changes; the next start takes it in (`Outbox.absorb`:
/// what the outbox already has is not stored twice), and it is removed once nothing is held. A
/// power loss takes tmpfs with it; a kill of the agent does not.
///
/// Events that get their seqs only when written (state and log events, while a write hangs) get
/// them in the copy from above anything the outbox can have given out meanwhile (the events
/// waiting, and an unclean stop's reserve), so a copy taken in never clashes with the outbox.
final class MemoryCopy: Sendable {
    let path: String
    let limits: OutboxLimits
    /// Opens an outbox file at a path, its seqs from at least a floor (the daemon's, for its
    /// limits and its event maker).
    let open: @Sendable (_ path: String, _ seqFloor: UInt64) throws -> Outbox

    /// What a copy is of: the last hand-over in it, how many events wait for the writer, the last
    /// alarm among them, whether a rule state, the hang's event, and what the outbox holds.
    struct Signature: Equatable {
        var through: Int
        var events: Int
        var lastAlarm: EventID?
        var withState: Bool
        var hang: EventID?
        var held: Int?
        var lastHeldAlarm: EventID?
    }

    struct State {
        var copied: Signature?
        /// Events waiting for the writer that are in the copy.
        var handedIDs: Set<EventID> = []
        /// When it was written (boot clock ns).
        var writtenAt: UInt64 = 0
        /// A copy left by an earlier run that the start could not take in: never replaced.
        var foreign = false
        /// The last copy could not be written: the one on disk, if any, is behind.
        var stale = false
        /// A copy that could not be written, said once until nothing is held again.
        var failureSaid = false
    }
    let state = Mutex(State())

    init(path: String, limits: OutboxLimits, open: @escaping @Sendable (_ path: String, _ seqFloor: UInt64) throws -> Outbox) {
        self.path = path
        self.limits = limits
        self.open = open
    }

    /// How often a copy is rewritten for new readings alone (ns).
    static let readingsEvery: UInt64 = 1_000_000_000

    /// Where the copy lives: beside the control socket, on tmpfs, as the stand-in.
    static func path(socket: String) -> String { socket.parentDirectory + "/outbox-memory-copy.sqlite" }

    /// Where the copy is, when its last writing succeeded (new readings reach it within a second).
    var current: String? { state.withLock { $0.copied != nil && !$0.stale ? path : nil } }

    /// Brings the copy up to date (the rules' loop, and the stop's watch, call it every round).
    /// `hanging`: a write of the outbox hangs; `hang`: the technical event that reported it,
    /// noted in the copy so that the start that takes it in clears it. Returns a line for the
    /// journal when the copy could not be written. Never waits for the outbox's disk: the
    /// outbox's own hold is read only if its lock is free within 20 ms.
    func update(_ outbox: LockedOutbox, hanging: Bool, hang: EventID?) -> String? {
        state.withLock { s -> String? in
            guard !s.foreign, hanging || outbox.holdingInMemory.load(ordering: .relaxed) || s.copied != nil else { return nil }
            // With the lock, what waits for the writer is read in the same hold as the outbox's
            // own: an event the writer moves from one to the other is in exactly one of them.
            // The copy itself is written after the lock is let go: an alarm is not held up by it.
            let look = try? outbox.with(within: .milliseconds(20)) { o in Look(outbox.unwritten(), o) }
            return step(&s, outbox, hang: hang, look ?? Look(outbox.unwritten(), nil))
        }
    }

    /// What memory holds, as seen in one hold of the outbox's lock (`seen` false: the lock was
    /// not free, a write hangs, and only what waits for the writer is known).
    struct Look {
        var events: [Event]
        var ruleState: EngineState?
        var through: Int
        var seen: Bool
        var held: (signature: Int, lastAlarm: EventID?)?
        /// What is held, for a copy written after the lock is let go (values: no copying now).
        var snapshot: HeldSnapshot?

        init(_ unwritten: (events: [Event], ruleState: EngineState?, through: Int), _ o: Outbox?) {
            (events, ruleState, through) = unwritten
            seen = o != nil
            held = o.flatMap { o in o.heldSignature.map { ($0, o.lastHeldAlarm) } }
            snapshot = o?.heldSnapshot(readingFollowed: false)
        }
    }

    func step(_ s: inout State, _ outbox: LockedOutbox, hang: EventID?, _ look: Look) -> String? {
        if look.events.isEmpty && look.ruleState == nil {
            // Nothing waits for the writer. While a write hangs, the hold cannot be seen: the
            // copy stays as it is; else it goes once nothing is held either.
            guard look.seen else { return nil }
            if look.held == nil {
                discard(&s)
                return nil
            }
        }
        return copy(&s, outbox, look, hang)
    }

    func copy(_ s: inout State, _ outbox: LockedOutbox, _ look: Look, _ hang: EventID?) -> String? {
        let (events, ruleState, through) = (look.events, look.ruleState, look.through)
        let lastAlarm = events.last { $0.lane == .alarm }?.eventID
        var now = Signature(through: through, events: events.count, lastAlarm: lastAlarm, withState: ruleState != nil, hang: hang,
                            held: look.held?.signature, lastHeldAlarm: look.held?.lastAlarm)
        if let copied = s.copied {
            // While a write hangs the hold cannot be read: the copy keeps what it had of it.
            if !look.seen { (now.held, now.lastHeldAlarm) = (copied.held, copied.lastHeldAlarm) }
            if copied == now { return nil }
            // Readings keep coming: at most one copy a second for them and for what the outbox
            // holds (the copy is a whole new file); an alarm, or the hang's report, at once.
            let soon = SystemClock.boottime() &- s.writtenAt < Self.readingsEvery
            if soon && lastAlarm == copied.lastAlarm && now.lastHeldAlarm == copied.lastHeldAlarm && hang == copied.hang { return nil }
        } else if access(path, F_OK) == 0 {
            s.foreign = true
            return "a copy of what the agent held in memory for the outbox is already at \(path) from an earlier run (not taken in at start): "
                + "it is kept, and none is made this time; restart the agent once the outbox writes again to take it in"
        }
        let floor = outbox.seqs.peek + UInt64(limits.memoryEvents + limits.seqReserve)
        do {
            if !look.seen, let copied = s.copied, copied.held != nil {
                // A write hangs, and the copy has the hold's events from before it, which cannot
                // be read now: what is new joins them in place (one transaction).
                try add(events.filter { !s.handedIDs.contains($0.eventID) }, ruleState: ruleState, hang: hang, to: path, floor: floor)
            } else {
                try write(events, ruleState: ruleState, hang: hang, floor: floor, held: look.snapshot)
            }
            s.copied = now
            s.handedIDs = Set(events.map(\.eventID))
            s.writtenAt = SystemClock.boottime()
            s.stale = false
            return nil
        } catch {
            s.stale = true
            guard !s.failureSaid else { return nil }
            s.failureSaid = true
            return "what the agent holds in memory for the outbox could not be copied to \(path) (\(error)): "
                + "if the agent is killed before the outbox writes again, those events are lost; see how full /run is (df -h /run)"
        }
    }

    /// A whole new copy, through a temporary file and a rename: a kill meanwhile leaves the last.
    /// `held`: what the outbox holds, which goes in first.
    func write(_ events: [Event], ruleState: EngineState?, hang: EventID?, floor: UInt64, held: HeldSnapshot? = nil) throws {
        let temporary = path + ".new"
        Outbox.removeFiles(temporary)
        if let held { _ = try held.spill(to: temporary, ruleState: nil) }
        try add(events, ruleState: ruleState, hang: hang, to: temporary, floor: floor)
        Outbox.removeFiles(temporary, suffixes: ["-wal", "-shm"])
        guard rename(temporary, path) == 0 else {
            let error = DaemonError("cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))")
            Outbox.removeFiles(temporary)
            throw error
        }
    }

    /// Adds events waiting for the writer, the rule state behind them and the hang's event to the
    /// outbox file at `path`, in one transaction; closed on return (SQLite folds its WAL in).
    func add(_ events: [Event], ruleState: EngineState?, hang: EventID?, to path: String, floor: UInt64) throws {
        let copy = try open(path, floor)
        _ = try copy.append(events, ruleState: ruleState)
        if let hang { try copy.setNote("hang_event", hang.description) }
        try copy.close()
    }

    /// Everything the copy was of is in the outbox, or in the stand-in (a stop): it goes.
    func discard() { state.withLock { discard(&$0) } }

    func discard(_ s: inout State) {
        guard !s.foreign else { return }
        if s.copied != nil { Outbox.removeFiles(path) }
        s = State()
    }
}
