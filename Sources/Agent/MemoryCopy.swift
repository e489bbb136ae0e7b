#if canImport(Glibc)
import Glibc
#endif
import Outbox
import Synchronization
import VaktpostCore
import VaktpostPosix

/// While a write of the outbox hangs, what waits for it lives only in the agent's memory (the
/// readings of those seconds, alarms sent from there, the rule state behind them). The stop waits
/// for the write, but only so long (`StopDuringHang.limit`), and a crash or the watchdog does not
/// wait at all. So what waits is also kept in a copy at `path`, an outbox file on the runtime
/// directory's tmpfs beside the stand-in, rewritten as it changes; the next start takes it in
/// (`Outbox.absorb`: what the outbox already has is not stored twice), and it is removed once
/// everything in it is written. A power loss takes tmpfs with it; a kill of the agent does not.
///
/// Events that get their seqs only when written (state and log events, while a write hangs) get
/// them in the copy from above anything the outbox can have given out meanwhile (the events
/// waiting, and an unclean stop's reserve), so a copy taken in never clashes with the outbox.
final class HangCopy: Sendable {
    let path: String
    let limits: OutboxLimits
    /// Opens a new outbox file at a path, its seqs from a floor (the daemon's, for its limits
    /// and its event maker).
    let open: @Sendable (_ path: String, _ seqFloor: UInt64) throws -> Outbox

    struct State {
        /// The copy on disk is of this: the last hand-over in it, how many events, the last
        /// alarm, whether a rule state, the hang's event.
        var copied: (through: Int, events: Int, lastAlarm: EventID?, withState: Bool, hang: EventID?)?
        /// When it was written (boot clock ns).
        var writtenAt: UInt64 = 0
        /// A copy left by an earlier run that the start could not take in: never replaced.
        var foreign = false
        /// The last copy could not be written: the one on disk, if any, is behind.
        var stale = false
        /// A copy that could not be written, said once per hang.
        var failureSaid = false
    }
    let state = Mutex(State())

    /// Where the copy is, when its last writing succeeded (new readings reach it within a second).
    var current: String? { state.withLock { $0.copied != nil && !$0.stale ? path : nil } }

    init(path: String, limits: OutboxLimits, open: @escaping @Sendable (_ path: String, _ seqFloor: UInt64) throws -> Outbox) {
        self.path = path
        self.limits = limits
        self.open = open
    }

    /// How often a copy is rewritten for new readings alone (ns).
    static let readingsEvery: UInt64 = 1_000_000_000

    /// Where the copy lives: beside the control socket, on tmpfs, as the stand-in.
    static func path(socket: String) -> String { socket.parentDirectory + "/outbox-hang-copy.sqlite" }

    /// Brings the copy up to date (the rules' loop, and the stop's watch, call it every round):
    /// written while the outbox hangs, kept in step while it holds anything not yet written,
    /// removed once everything is. `hang`: the technical event that reported the hang, noted in
    /// the copy so that the start that takes it in clears it. Returns a line for the journal
    /// when the copy could not be written. Never waits for the outbox's disk.
    func update(_ outbox: LockedOutbox, hanging: Bool, hang: EventID?) -> String? {
        state.withLock { s -> String? in
            guard !s.foreign, hanging || s.copied != nil else { return nil }
            let (events, ruleState, through) = outbox.unwritten()
            if events.isEmpty && ruleState == nil {
                if s.copied != nil { remove() }
                s.copied = nil
                s.stale = false
                s.failureSaid = false
                return nil
            }
            let lastAlarm = events.last { $0.lane == .alarm }?.eventID
            let now = (through: through, events: events.count, lastAlarm: lastAlarm, withState: ruleState != nil, hang: hang)
            if let copied = s.copied {
                // Readings keep coming during a hang: at most one copy a second for them (the
                // copy is a whole new file); an alarm, or the end of the wait, at once.
                if copied == now { return nil }
                let soon = SystemClock.boottime() &- s.writtenAt < Self.readingsEvery
                if soon && lastAlarm == copied.lastAlarm && hang == copied.hang { return nil }
            }
            if s.copied == nil, access(path, F_OK) == 0 {
                s.foreign = true
                return "a copy of what waits for a write of the outbox is already at \(path) from an earlier run (not taken in at start): "
                    + "it is kept, and none is made this time; restart the agent once the outbox writes again to take it in"
            }
            do {
                try write(events, ruleState: ruleState, hang: hang, floor: outbox.seqs.peek + UInt64(limits.memoryEvents + limits.seqReserve))
                s.copied = now
                s.writtenAt = SystemClock.boottime()
                s.stale = false
                return nil
            } catch {
                s.stale = true
                guard !s.failureSaid else { return nil }
                s.failureSaid = true
                return "what waits in memory for a write of the outbox that hangs could not be copied to \(path) (\(error)): "
                    + "if the agent is killed before the write returns, those \(events.count) events are lost; see how full /run is (df -h /run)"
            }
        }
    }

    /// A whole new copy, through a temporary file and a rename: a kill meanwhile leaves the last.
    func write(_ events: [Event], ruleState: EngineState?, hang: EventID?, floor: UInt64) throws {
        let temporary = path + ".new"
        Self.removeFiles(temporary)
        do {
            let copy = try open(temporary, floor)
            _ = try copy.append(events, ruleState: ruleState)
            if let hang { try copy.setNote("stand_in_event", hang.description) }
            try copy.close()
        }  // closed here: SQLite folds its WAL into the file
        Self.removeFiles(temporary, suffixes: ["-wal", "-shm"])
        guard rename(temporary, path) == 0 else {
            let error = DaemonError("cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))")
            Self.removeFiles(temporary)
            throw error
        }
    }

    func remove() { Self.removeFiles(path) }

    static func removeFiles(_ path: String, suffixes: [String] = ["", "-wal", "-shm"]) {
        for suffix in suffixes { Files.remove(path + suffix) }
    }
}
