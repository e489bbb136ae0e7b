import SQLiteStore
import VaktpostCore

/// This process's salt for the ids it makes for damaged rows: no two hubs, and no two starts,
/// make the same one.
private let damagedRowSalt = UInt64.random(in: .min ... .max)

/// Rows whose id the SD card damaged. `quick_check` at open reads the file's structure, not what
/// its rows say: a flipped bit in an `event_id` leaves a database that opens, and an id that
/// `EventID` cannot read. Such a row is read around (`storedEvent`) and mended at the next write
/// here; it is never a reason to stop, since a crash on it would come back at every start.
extension Outbox {
    /// What `EventID` reads, as a GLOB pattern: 8-4-4-4-12 hex digits.
    static let canonicalIDPattern = [8, 4, 4, 4, 12].map { String(repeating: "[0-9a-fA-F]", count: $0) }.joined(separator: "-")

    /// A stored event's row, bound to its seq and id: the row with that seq, if its id is the
    /// event's or one that cannot be read (a settle must find a row damaged after it was read;
    /// else the row would stay, taken by a batch that no longer exists, and never go out).
    static let eventRow = "seq = ? AND (event_id = ? OR event_id NOT GLOB '\(canonicalIDPattern)')"
    static let deleteEventRow = "DELETE FROM events WHERE \(eventRow)"
    static let unbatchEventRow = "UPDATE events SET batch_id = NULL WHERE \(eventRow)"

    /// The id of an event whose id column cannot be read: the one in the event's own bytes, which
    /// is what the platform was sent and answers for; if those are damaged too, a new one
    /// (UUIDv7 at the event's time), the same at every read in this process.
    static func recoveredID(seq: UInt64, payload: [UInt8], occurredAt: WallTime) -> EventID {
        if let text = (try? JSONValue.parse(bytes: payload))?["eventId"]?.stringValue, let id = EventID(text) { return id }
        return madeID(seq: seq, occurredAt: occurredAt)
    }

    static func madeID(seq: UInt64, occurredAt: WallTime) -> EventID {
        var rng = SplitMix64(seed: damagedRowSalt ^ seq)
        return EventID.v7(unixMilliseconds: occurredAt.millisecondsSinceEpoch, using: &rng)
    }

    /// Gives the rows a read found with ids that cannot be read (`damagedSeqs`) their ids back
    /// (`recoveredID`), in each table that keeps events, and raises `outbox.recovered` with
    /// their seqs. Looked up by seq: a scan of every id at each start would cost 150 ms with an
    /// outage's backlog, for damage that every read of the row catches anyway. Returns the seqs
    /// mended.
    @discardableResult
    func repairDamagedIDs() throws -> [UInt64] {
        guard !damagedSeqs.isEmpty else { return [] }
        let seqs = damagedSeqs.sorted().map { SQLiteValue.integer(Int64(clamping: $0)) }
        var mended: [UInt64] = [], fromBytes = 0
        try db.transaction {
            for table in ["events", "followed_alarms", "dead_letters"] {
                let damaged = try db.prepare("""
                    SELECT seq, payload, occurred_ns FROM \(table)
                    WHERE seq IN (\(placeholders(seqs.count))) AND event_id NOT GLOB '\(Self.canonicalIDPattern)'
                    """).bind(seqs)
                var rows: [(seq: UInt64, payload: [UInt8], occurredAt: WallTime)] = []
                while try damaged.step() {
                    rows.append((UInt64(damaged.int64(0)), damaged.blob(1), WallTime(nanosecondsSinceEpoch: damaged.int64(2))))
                }
                let update = try db.prepare("UPDATE OR IGNORE \(table) SET event_id = ? WHERE seq = ?")
                for row in rows {
                    let id = Self.recoveredID(seq: row.seq, payload: row.payload, occurredAt: row.occurredAt)
                    let made = Self.madeID(seq: row.seq, occurredAt: row.occurredAt)
                    try update.bind(.text(id.description), .integer(Int64(row.seq))).run()
                    if db.changes == 1 {
                        if id != made { fromBytes += 1 }
                    } else {
                        // Another row already has the id its bytes name: this one gets a new one.
                        try update.bind(.text(made.description), .integer(Int64(row.seq))).run()
                    }
                    mended.append(row.seq)
                }
            }
        }
        damagedSeqs = []
        guard !mended.isEmpty else { return [] }
        try append([makeEvent(.outboxRecovered, .active, nil, [
            ("repaired", .int(Int64(mended.count))),
            ("idsFromEventBytes", .int(Int64(fromBytes))),
            ("seqs", .array(mended.prefix(100).map { .int(Int64($0)) })),
            ("reason", .string("event ids unreadable on disk: read again from each event's own bytes, or given new ones")),
        ])])
        return mended
    }

    /// Before a write (`writeOrKeep`), which may look rows up by id: mends the rows a read found
    /// damaged, so that the lookup finds them. While the disk takes no writes it waits.
    func mendDamagedIDsIfSeen() {
        guard !damagedSeqs.isEmpty, hold == nil else { return }
        _ = try? repairDamagedIDs()
    }
}
