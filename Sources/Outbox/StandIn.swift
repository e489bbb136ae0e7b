#if canImport(Glibc)
import Glibc
#endif
import SQLiteStore
import VaktpostCore

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
            return UInt64(max(1, next)) + UInt64(clean && unseen == 0 ? 0 : limits.memoryEvents + unseen)
        }
        return nil
    }

    /// Takes in what a stand-in outbox still holds (the agent ran from it while this one could
    /// not be written): its queued events, whose batches are made anew, dead letters, followed
    /// alarms, the rule state, its notes, and its seq counter. Returns how many events came and
    /// the stand-in's `outbox.write_failed` event (its note `stand_in_event`), to be cleared.
    public func absorb(standIn path: String) throws -> (events: Int, event: EventID?) {
        let columns = "seq, event_id, lane, class, type, priority, sensor, occurred_ns, payload"
        try db.prepare("ATTACH DATABASE ? AS stand_in").bind(.text(path)).run()
        defer { try? db.execute("DETACH DATABASE stand_in") }
        var moved = 0, event: EventID? = nil
        try setSynchronous(full: true)
        try db.transaction {
            try db.execute("INSERT OR IGNORE INTO events (\(columns)) SELECT \(columns) FROM stand_in.events")
            moved = db.changes
            // A seq both outboxes gave to different events (the stand-in's floor came from the
            // clock, and the clock was behind): not one of them is dropped; the stand-in stays.
            let clashing = try db.integer("SELECT COUNT(*) FROM stand_in.events WHERE event_id NOT IN (SELECT event_id FROM main.events)") ?? 0
            guard clashing == 0 else { throw OutboxError.standInClash(events: Int(clashing), path: path) }
            try db.execute("INSERT OR IGNORE INTO dead_letters (\(columns), reason, rejected_ns) SELECT \(columns), reason, rejected_ns FROM stand_in.dead_letters")
            try db.execute("""
                INSERT OR IGNORE INTO followed_alarms (\(columns), location, accepted_ns, status, escalation_id)
                SELECT \(columns), location, accepted_ns, status, escalation_id FROM stand_in.followed_alarms
                """)
            try db.execute("INSERT OR REPLACE INTO rule_state (id, state) SELECT id, state FROM stand_in.rule_state")
            try db.execute("""
                INSERT OR REPLACE INTO meta (key, value, text) SELECT key, value, text FROM stand_in.meta
                WHERE key LIKE 'note.%' AND key != 'note.stand_in_event'
                """)
            let theirs = try db.integer("SELECT value FROM stand_in.meta WHERE key = 'next_seq'") ?? 0
            event = try db.text("SELECT text FROM stand_in.meta WHERE key = 'note.stand_in_event'").flatMap(EventID.init)
            nextSeq = max(nextSeq, UInt64(max(0, theirs)))
            try setMeta("next_seq", Int64(nextSeq))
        }
        try recount()
        return (moved, event)
    }
}
