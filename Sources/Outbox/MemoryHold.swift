import SQLiteStore
import VaktpostCore
import VaktpostPosix

/// When the disk takes no writes (full, failing, locked by another process): events, deliveries
/// and follow-ups wait in memory, alarms are sent from there, and all of it is written in one
/// transaction when the disk takes writes again.
extension Outbox {
    /// The disk refused a write: from now on events wait in memory (raised once, as
    /// `outbox.disk_full` or `outbox.write_failed`), and the disk is tried again in a second.
    func holdInMemory(_ error: SQLiteError) {
        tryDiskInASecond()
        guard hold == nil else { return }
        // A lock another process holds made this write wait `lockWait`; the retries must not,
        // with the outbox held and an alarm perhaps waiting for it.
        db.setBusyTimeout(.milliseconds(100))
        let type: EventType = error.isFull ? .outboxDiskFull : .outboxWriteFailed
        let event = prepare(makeEvent(type, .active, nil, [("inMemory", .int(Int64(memory.count + 1))), ("error", .string(Self.cause(error)))]))
        hold = StorageHold(type: type, eventID: event.eventID, cause: Self.cause(error))
        memory.append(event)
    }

    static func cause(_ error: SQLiteError) -> String { "\(error.message), SQLite code \(error.extendedCode)" }

    /// Whether to try the disk now: always, unless it refused a write less than a second ago.
    var mayTryDisk: Bool { hold == nil || SystemClock.boottime() >= retryAt }

    func tryDiskInASecond() { retryAt = SystemClock.boottime() + 1_000_000_000 }

    public var inMemoryCount: Int { memory.count }

    /// The last alarm-lane event held in memory, if any.
    public var lastHeldAlarm: EventID? { memory.last { $0.lane == .alarm }?.eventID }

    /// While events are held in memory: a value that changes with what is held (events,
    /// deliveries, follow-ups, notes, the rule state's time), so that a copy of it (`spill`) can
    /// tell it is out of date. Nil when nothing is held.
    public var heldSignature: Int? {
        guard let hold else { return nil }
        var h = Hasher()
        h.combine(hold.eventID)
        h.combine(memory.count)
        h.combine(memory.last?.eventID)
        h.combine(unrecorded.count)
        h.combine(followUps)
        h.combine(notesHeld)
        h.combine(memoryRuleState?.now?.nanosecondsSinceEpoch)
        return h.finalize()
    }

    /// Writes what waits in memory, and records the deliveries settled meanwhile, in one
    /// transaction; ends the hold (`outbox.disk_full` or `outbox.write_failed` cleared). Called
    /// by `append` (at most once a second while held); the daemon also calls it on a timer so
    /// a quiet hub notices when the disk takes writes again.
    public func flushMemory() throws {
        guard let held = hold else { return }
        retries += 1
        let cleared = prepare(makeEvent(held.type, .cleared, held.eventID, [("written", .int(Int64(memory.count)))]))
        let pending = memory + [cleared]
        try setSynchronous(full: true)
        do {
            do {
                try writeMemory(pending)
            } catch let error as SQLiteError where error.isFull {
                try? reloadAfterRollback()
                // As in `append`: a truncated WAL may be room enough.
                guard (try? checkpoint()) != nil else { throw error }
                try writeMemory(pending)
            }
        } catch {
            try? reloadAfterRollback()
            // The cleared event was never written: its seq goes to the next event, no gap.
            seqs.giveBack(cleared.seq)
            tryDiskInASecond()
            throw error
        }
        followedAsRead = withChangesHeld(followedAsRead)
        memory = []
        memoryRuleState = nil
        memoryEvicted = (0, 0)
        hold = nil
        unrecorded = []
        awaitingRecord = []
        followUps = [:]
        notesHeld = [:]
        memoryBatch = nil  // now an ordinary stored batch: nextBatch finds it in the table
        db.setBusyTimeout(limits.lockWait)
    }

    func writeMemory(_ pending: [StoredEvent]) throws {
        try db.transaction {
            try writeHeld(pending, into: self)
            rows += pending.count
            bytes += pending.reduce(0) { $0 + Int64($1.payload.count) }
            if let memoryBatch { try storeBatch(memoryBatch) }
            try addCounter("evicted_log", memoryEvicted.log)
            try addCounter("coalesced_state", memoryEvicted.state)
            try setMeta("next_seq", Int64(nextSeq))
        }
    }

    /// Inside a transaction on `target` (this outbox when the disk takes writes again, or a
    /// stand-in at a stop, `spill`): the rows of what memory holds that both write.
    func writeHeld(_ pending: [StoredEvent], into target: Outbox) throws {
        try heldSnapshot(readingFollowed: false)?.write(pending, into: target)
    }

    /// Keeps the memory queue inside its bound: oldest log, then oldest state go first.
    func trimMemory() {
        for victim in [EventClass.log, .state] {
            while memory.count > limits.memoryEvents, let i = memory.firstIndex(where: { $0.eventClass == victim && !inMemoryBatch($0) }) {
                memory.remove(at: i)
                if victim == .log { memoryEvicted.log += 1 } else { memoryEvicted.state += 1 }
            }
        }
    }

    func inMemoryBatch(_ e: StoredEvent) -> Bool {
        memoryBatch?.events.contains { $0.eventID == e.eventID } ?? false
    }

    /// Runs `write` (one statement or transaction; `synced`: with FULL or NORMAL sync, nil: as
    /// the last write); if the disk takes no writes (found now, or less than a second ago),
    /// `keep` holds the change in memory for `flushMemory` instead.
    func writeOrKeep(synced: Bool?, _ write: () throws -> Void, else keep: () -> Void) throws {
        guard mayTryDisk else { return keep() }
        // Rows a read found with damaged ids are mended first, so that this write's lookups find them.
        mendDamagedIDsIfSeen()
        do {
            if let synced { try setSynchronous(full: synced) }
            try write()
        } catch let error as SQLiteError where error.isStorageFailure {
            try? reloadAfterRollback()
            holdInMemory(error)
            keep()
        }
    }

    func postpone(_ settlement: Settlement) {
        unrecorded.append(settlement)
        for e in settlement.batch.events where settlement.outcomes[e.eventID] != nil && !settlement.onlyInMemory.contains(e.eventID) {
            awaitingRecord.insert(e.eventID)
        }
    }
}
