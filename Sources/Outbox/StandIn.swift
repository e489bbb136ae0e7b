#if canImport(Glibc)
import Glibc
#endif
import SQLiteStore
import VaktpostCore
import VaktpostPosix

/// The outbox's side of a stand-in: when the outbox cannot be opened at start, the daemon runs
/// from another file (`HubDaemon`), which continues this one's seqs and is taken back in later.
extension Outbox {
    /// The seq an outbox that cannot be written would give out next, read without writing
    /// anything (on a read-only file system too), with the gap of an unclean stop: where a
    /// stand-in continues, so that no seq is used twice. Nil when the file cannot be read.
    public static func nextSeq(readingFrom path: String, limits: OutboxLimits = OutboxLimits()) -> UInt64? {
        // With its WAL if the -shm can be opened; else the file alone, whose WAL (commits not
        // yet checkpointed) is not seen: a gap of one event per 64 bytes of WAL covers them.
        var wal = stat()
        let walBytes = stat(path + "-wal", &wal) == 0 ? Int(wal.st_size) : 0
        for (mode, immutable) in [(Connection.OpenMode.readOnly, false), (.immutable, true)] {
            guard let c = try? Connection(path: path, mode: mode),
                  let next = (try? c.integer("SELECT value FROM meta WHERE key = 'next_seq'")) ?? nil else { continue }
            let clean = ((try? c.integer("SELECT value FROM meta WHERE key = 'clean'")) ?? nil) == 1
            let unseen = immutable ? walBytes / 64 : 0
            return UInt64(max(1, next)) + UInt64(clean && unseen == 0 ? 0 : limits.seqReserve + unseen)
        }
        return nil
    }

    /// Takes in what a stand-in outbox still holds (the agent ran from it while this one could
    /// not be written, or it took what memory held at a stop): its queued events, whose batches
    /// are made anew, dead letters, followed alarms (the stand-in's word on one is the newer),
    /// the rule state, its notes, and its seq counter. Returns how many events came and the
    /// technical event raised for the stand-in (its notes `stand_in_event`, `stand_in_type`:
    /// `outbox.write_failed`, or `outbox.disk_full` from a stop), to be cleared.
    public func absorb(standIn path: String) throws -> (events: Int, event: EventID?, type: EventType) {
        let columns = "seq, event_id, lane, class, type, priority, sensor, occurred_ns, payload"
        try db.prepare("ATTACH DATABASE ? AS stand_in").bind(.text(path)).run()
        defer { try? db.execute("DETACH DATABASE stand_in") }
        var moved = 0, event: EventID? = nil, type = EventType.outboxWriteFailed
        try setSynchronous(full: true)
        try db.transaction {
            try db.execute("INSERT OR IGNORE INTO events (\(columns)) SELECT \(columns) FROM stand_in.events")
            moved = db.changes
            // A seq both outboxes gave to different events (the stand-in's floor came from the
            // clock, and the clock was behind): not one of them is dropped; the stand-in stays.
            let clashing = try db.integer("SELECT COUNT(*) FROM stand_in.events WHERE event_id NOT IN (SELECT event_id FROM main.events)") ?? 0
            guard clashing == 0 else { throw OutboxError.standInClash(events: Int(clashing), path: path) }
            try db.execute("INSERT OR IGNORE INTO dead_letters (\(columns), reason, rejected_ns) SELECT \(columns), reason, rejected_ns FROM stand_in.dead_letters")
            // Endings first: an alarm the stand-in follows again (posted anew) stays followed.
            for id in try db.text("SELECT text FROM stand_in.meta WHERE key = 'followed_ended'")?.split(separator: ",") ?? [] {
                try db.prepare("DELETE FROM followed_alarms WHERE event_id = ?").bind(.text(String(id))).run()
            }
            try db.execute("""
                INSERT OR REPLACE INTO followed_alarms (\(columns), location, accepted_ns, status, escalation_id)
                SELECT \(columns), location, accepted_ns, status, escalation_id FROM stand_in.followed_alarms
                """)
            // A stand-in for an open that hung started its rules afresh (`rulesAfreshNote`): the
            // rule state saved here with the last events, timers and all, is kept, and the
            // stand-in's is kept beside it (`standInRulesNote`) for the rules to take in.
            let afresh = try db.text("SELECT text FROM stand_in.meta WHERE key = 'note.\(Outbox.rulesAfreshNote)'") != nil
            if afresh {
                try db.execute("""
                    INSERT OR REPLACE INTO meta (key, text) SELECT 'note.\(Outbox.standInRulesNote)', state FROM stand_in.rule_state
                    WHERE EXISTS (SELECT 1 FROM main.rule_state)
                    """)
            }
            try db.execute("INSERT OR \(afresh ? "IGNORE" : "REPLACE") INTO rule_state (id, state) SELECT id, state FROM stand_in.rule_state")
            try db.execute("""
                INSERT OR REPLACE INTO meta (key, value, text) SELECT key, value, text FROM stand_in.meta
                WHERE key LIKE 'note.%' AND key NOT IN ('note.stand_in_event', 'note.stand_in_type', 'note.\(Outbox.rulesAfreshNote)', 'note.\(Outbox.standInRulesNote)')
                """)
            let theirs = try db.integer("SELECT value FROM stand_in.meta WHERE key = 'next_seq'") ?? 0
            event = try db.text("SELECT text FROM stand_in.meta WHERE key = 'note.stand_in_event'").flatMap(EventID.init)
            if try db.text("SELECT text FROM stand_in.meta WHERE key = 'note.stand_in_type'").map(EventType.init) == .outboxDiskFull { type = .outboxDiskFull }
            nextSeq = max(nextSeq, UInt64(max(0, theirs)))
            try setMeta("next_seq", Int64(nextSeq))
        }
        try recount()
        return (moved, event, type)
    }

    /// The note a stand-in carries while it stands in for an outbox whose open hangs and its rules
    /// run afresh (it had no rule state of its own): `absorb` then keeps the outbox's own rule
    /// state, saved with its last events and with the timers running then (not back in bed within
    /// 30 minutes), over the stand-in's, which knows only the minutes it ran. Taken off when that
    /// open fails instead: the stand-in then runs for as long as it takes, and its rules go on.
    public static let rulesAfreshNote = "stand_in_rules_afresh"

    /// The rule state of a stand-in whose rules ran afresh, left by `absorb` for the daemon's
    /// rules to take in (`RuleEngine.takeIn`: what the stand-in heard, and the alarms it raised)
    /// and removed once they have. A crash before that takes it in again at the next start, to
    /// the same rule state (at most a duplicate's clearing is said twice).
    public static let standInRulesNote = "stand_in_rules"

    /// Removes an outbox file left on tmpfs (a stand-in taken in, a copy no longer needed) with
    /// its WAL and shared memory; `suffixes`: which of them.
    public static func removeFiles(_ path: String, suffixes: [String] = ["", "-wal", "-shm"]) {
        for suffix in suffixes { Files.remove(path + suffix) }
    }

    /// A stand-in this outbox could not take in at start (`absorb` failed) stays for the next
    /// start: this outbox's seqs continue above its, so that a later `absorb` finds no seq
    /// given out twice.
    public func continueAbove(standIn path: String) {
        guard let theirs = Outbox.nextSeq(readingFrom: path, limits: limits) else { return }
        nextSeq = max(nextSeq, theirs)
    }

    /// At a stop while the disk takes no writes: what memory holds (events, deliveries the
    /// platform confirmed, followed alarms with their changes, notes, the rule state) goes to a
    /// stand-in at `path` (on tmpfs: it survives a restart of the agent, not of the hub), which
    /// continues this outbox's seqs. The next start runs from the stand-in if this outbox still
    /// cannot be opened, or takes it in (`absorb`). Returns how many events went.
    public func spill(to path: String, ruleState: EngineState?) throws -> Int {
        guard let held = heldSnapshot() else { return 0 }
        return try held.spill(to: path, ruleState: ruleState)
    }

    /// What memory holds, taken as it is now, for `HeldSnapshot.spill` to write elsewhere later:
    /// a copy kept while the disk refuses writes (`MemoryCopy`) is written outside the outbox's
    /// lock, so that an alarm is not held up by it. Nil when nothing is held.
    /// `readingFollowed`: the followed alarms as the disk has them, if it can be read (a stop's
    /// spill); else as last read, with the changes held (no read: cheap enough for every round).
    public func heldSnapshot(readingFollowed: Bool = true) -> HeldSnapshot? {
        guard let hold else { return nil }
        let followed = (readingFollowed ? try? followedAlarms() : nil) ?? withChangesHeld(followedAsRead)
        return HeldSnapshot(hold: hold, memory: memory, unrecorded: unrecorded, followUps: followUps, notesHeld: notesHeld,
                            ruleState: memoryRuleState, followed: followed,
                            nextSeq: nextSeq, limits: limits, now: now, makeEvent: makeEvent)
    }
}

/// What an outbox holds in memory while the disk refuses writes (`Outbox.heldSnapshot`).
public struct HeldSnapshot {
    let hold: StorageHold
    let memory: [StoredEvent]
    let unrecorded: [Settlement]
    let followUps: [EventID: FollowUp]
    let notesHeld: [String: String?]
    let ruleState: EngineState?
    let followed: [FollowedAlarm]
    let nextSeq: UInt64
    let limits: OutboxLimits
    let now: () -> WallTime
    let makeEvent: TechnicalEventMaker

    /// Inside a transaction of `target`: the deliveries, events, follow-ups, notes and rule
    /// state held (`pending`: the events, with what is to be written with them).
    func write(_ pending: [StoredEvent], into target: Outbox) throws {
        // The deliveries first: an alarm received meanwhile and then lost by the platform
        // (404) is in memory again, to be inserted after its settlement took it out.
        for settlement in unrecorded { try target.record(settlement) }
        for e in pending { try target.insert(e) }
        for (id, change) in followUps { try target.apply(change, to: id) }
        for (key, text) in notesHeld { try target.setMetaText("note." + key, text) }
        if let ruleState { try target.saveRuleState(ruleState) }
    }

    /// All of it (events, deliveries the platform confirmed, followed alarms with their changes,
    /// notes, the rule state) to a stand-in at `path`, which continues the outbox's seqs; the
    /// next start runs from it, or takes it in (`Outbox.absorb`). Returns how many events went.
    public func spill(to path: String, ruleState newer: EngineState?) throws -> Int {
        let standIn = try Outbox(path: path, limits: limits, seqFloor: nextSeq, now: now, makeEvent: makeEvent)
        try standIn.setSynchronous(full: true)
        try standIn.db.transaction {
            try write(memory, into: standIn)
            // The followed alarms this outbox knows (the stand-in has only those received while
            // held), with the changes since; the list leaves out those that ended.
            for alarm in followed { try standIn.insertFollowed(alarm) }
            // Endings of alarms this outbox still lists as followed: an alarm acknowledged
            // meanwhile must not be followed (and perhaps escalated) again after the restart.
            let ended = followUps.compactMap { id, change in if case .ended = change { id.description } else { nil } }.sorted()
            if !ended.isEmpty { try standIn.setMetaText("followed_ended", ended.joined(separator: ",")) }
            if let newer { try standIn.saveRuleState(newer) }  // newer than the one committed last
            // An earlier stand-in's event, if one is still there, stays the one to clear.
            if try standIn.note("stand_in_event") == nil {
                try standIn.setMetaText("note.stand_in_event", hold.eventID.description)
                try standIn.setMetaText("note.stand_in_type", hold.type.rawValue)
            }
            standIn.nextSeq = max(standIn.nextSeq, nextSeq)
            try standIn.setMeta("next_seq", Int64(standIn.nextSeq))
        }
        try standIn.recount()
        try standIn.close()
        return memory.count
    }
}

extension Outbox {
    /// Inside a transaction: a followed alarm as this outbox knows it, replacing an older word.
    func insertFollowed(_ alarm: FollowedAlarm) throws {
        try db.prepare("""
            INSERT OR REPLACE INTO followed_alarms (seq, event_id, lane, class, type, priority, sensor, occurred_ns, payload, location, accepted_ns, status, escalation_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).bind(Outbox.columns(alarm.event) + [.text(alarm.location), .integer(alarm.acceptedAt.nanosecondsSinceEpoch), .text(alarm.status),
                                                     alarm.escalation.map { .text($0.description) } ?? .null]).run()
    }
}
