#if canImport(Glibc)
import Glibc
#endif
import SQLiteStore
import Synchronization
import VaktpostCore
import VaktpostPosix

/// The durable queue between the rule engine and the uplink. Every event is stored here before
/// anything is sent, and leaves only when the platform has acknowledged it.
///
/// - `seq` is per hub, strictly increasing and never reused: it is persisted with every write;
///   after an unclean stop the counter skips the block it may have handed to events held in
///   memory, so the platform sees a gap (something may be lost) rather than a repeat.
/// - Two lanes: `alarm` (alarm, technical, test) and `bulk` (state, log); priority order within
///   a lane. A batch's id and exact bytes are stored before its first send.
/// - One transaction per `append`: one fsync for the whole group, `synchronous=FULL` whenever it
///   carries an alarm-lane event, so an alarm is on disk before `append` returns.
/// - When full: oldest `log` first, then superseded `state`; alarms, technical and test events
///   are never evicted. When the disk itself takes no writes (full, failing, locked by another
///   process): events wait in a bounded memory queue and are sent from there, and what the
///   platform confirms meanwhile is recorded when the disk takes writes again.
///
/// Not `Sendable`: one owner calls it from one thread (the daemon gives it its own).
public final class Outbox {
    public let path: String
    let db: Connection
    let limits: OutboxLimits
    let now: () -> WallTime
    let makeEvent: TechnicalEventMaker
    var rng = SystemRandomNumberGenerator()

    /// The next seq, shared with whoever stamps alarm-lane events before they reach `append`
    /// (the daemon's writer hands them to the alarm lane while a write hangs).
    public let seqs: SeqCounter
    var nextSeq: UInt64 {
        get { seqs.peek }
        set { seqs.set(newValue) }
    }
    var rows = 0
    var bytes: Int64 = 0
    /// `PRAGMA data_version` when `rows` and `bytes` were last counted: another connection's
    /// commit (`vaktpost queue retry-dead-letters`) changes it, and only then is a count needed.
    var countedAt: Int64?
    /// Where the last capacity pass left the outbox, if it could not bring it under its limits
    /// (only protected events and the newest states left): the next pass waits until the
    /// outbox has grown by `capacitySlack` past it, instead of scanning at every append.
    var capacityFloor: (rows: Int, bytes: Int64)?
    /// Events accepted while the disk took no writes, not yet written.
    var memory: [StoredEvent] = []
    var memoryRuleState: EngineState?
    var memoryBatch: OutboxBatch?
    var memoryEvicted = (log: Int64(0), state: Int64(0))
    /// Set from the first write the disk refused until memory is written: the technical event
    /// raised for it, and why.
    public internal(set) var hold: StorageHold?
    /// Deliveries the platform confirmed while the disk took no writes, recorded with the memory
    /// queue. Until then their stored events are not offered again (`awaitingRecord`).
    var unrecorded: [Settlement] = []
    var awaitingRecord: Set<EventID> = []
    /// Changes to followed alarms, and notes, made while the disk took no writes.
    var followUps: [EventID: FollowUp] = [:]
    var notesHeld: [String: String?] = [:]
    /// The followed alarms as last read from the table, and those received since: when the
    /// disk cannot even be read (an SD card that died outright) they are followed, and
    /// escalated, from here.
    var followedAsRead: [FollowedAlarm] = []
    /// While held, the disk is tried again at most once a second (boot clock, ns): each try is a
    /// failing write, or a wait for another process's lock, with the outbox held.
    var retryAt: UInt64 = 0
    /// Writes tried while held (for tests: the retries are spaced, not one per append).
    var retries = 0
    var pressure: EventID?
    /// Rows a read found with an id the card damaged (`repairDamagedIDs` mends them).
    var damagedSeqs: Set<UInt64> = []
    var synchronousFull: Bool?
    /// When the last commit was, and whom to tell that the WAL has grown: for a checkpointer.
    public let walActivity = WALActivity()

    /// Set when this outbox stands in for the one at `path`, which could not be opened for
    /// writing (`HubDaemon`): why not.
    public var standingIn: (path: String, cause: String)?

    /// Where a damaged database was moved at open, if one was.
    public private(set) var recoveredFrom: String?
    /// The last user of this file did not close it (crash, power loss, SIGKILL).
    public private(set) var startedAfterUncleanStop = false

    /// Opens (or creates) the outbox. A damaged file is moved aside and replaced, and the new
    /// outbox starts with an `outbox.recovered` event: the agent runs on instead of crash-looping.
    ///
    /// `seqFloor`: the lowest seq to give out, for a stand-in outbox that continues another's seqs.
    public init(path: String, limits: OutboxLimits = OutboxLimits(), seqFloor: UInt64 = 0, now: @escaping () -> WallTime, makeEvent: @escaping TechnicalEventMaker) throws {
        self.path = path
        self.limits = limits
        self.now = now
        self.makeEvent = makeEvent
        seqs = SeqCounter()
        let existed = access(path, F_OK) == 0
        var recovered: (movedTo: String, reason: String)? = nil
        var connection: Connection
        do {
            connection = try Outbox.openChecked(path)
        } catch let error as SQLiteError where error.isCorrupt {
            let movedTo = try Outbox.moveAside(path, at: now())
            recovered = (movedTo, error.message)
            connection = try Connection(path: path)
        }
        db = connection
        // WAL: readers (the CLI) never block the writer. 2 MB page cache. Checkpoints are not
        // an append's business: an `OutboxCheckpointer` on its own connection and thread copies
        // the WAL into the database when a commit finds it past 1 MB, beside the writer, so an
        // alarm's commit pays its own fsync and never a checkpoint's two. Without one (tools,
        // tests) or if it falls behind, the commit itself checkpoints at 4 MB. The WAL is kept
        // small because it is disk space: on a nearly full card a WAL allowed to grow to 32 MB
        // was itself what filled the disk (Benchmarks/reliability.py); journal_size_limit
        // shrinks the file back to 4 MB when the WAL starts over. Not less: a WAL file that
        // must grow again makes every commit's fdatasync write its size too (-30 % ingest).
        db.setBusyTimeout(limits.lockWait)
        try db.execute("PRAGMA journal_mode = WAL; PRAGMA cache_size = -2000; PRAGMA temp_store = MEMORY; PRAGMA journal_size_limit = 4194304")
        db.onCommit(walPages: { [unowned db, walActivity] pages in
            walActivity.committed(walPages: pages)
            if pages >= OutboxCheckpointer.backstopPages { _ = try? db.checkpoint(.passive) }
        })
        try Outbox.migrator.migrate(db)
        if let pages = limits.maxPages { try db.execute("PRAGMA max_page_count = \(pages)") }

        var seq = UInt64(try db.integer("SELECT value FROM meta WHERE key = 'next_seq'") ?? 1)
        if recovered != nil {
            // The old counter is unreadable; a floor from the clock keeps new seqs above every old one.
            seq = max(seq, UInt64(max(1, now().millisecondsSinceEpoch)) * 1000)
        } else if existed, try db.integer("SELECT value FROM meta WHERE key = 'clean'") != 1 {
            seq += UInt64(limits.seqReserve)
            startedAfterUncleanStop = true
        }
        nextSeq = max(seq, seqFloor)
        pressure = try db.text("SELECT text FROM meta WHERE key = 'pressure_id'").flatMap(EventID.init)
        try db.transaction {
            try setMeta("next_seq", Int64(nextSeq))
            try setMeta("clean", 0)
            // The alarm lane keeps no batches (`queuedAlarms`): one an older agent left in flight
            // is let go, its alarm queued again, to go alone as every alarm now does.
            try db.execute("""
                DELETE FROM batches WHERE lane = \(Lane.alarm.code);
                UPDATE events SET batch_id = NULL WHERE lane = \(Lane.alarm.code) AND batch_id IS NOT NULL
                """)
        }
        try recount()
        if let recovered {
            recoveredFrom = recovered.movedTo
            try append([makeEvent(.outboxRecovered, .active, nil, [("movedAside", .string(recovered.movedTo)), ("reason", .string(recovered.reason))])])
        }
    }

    deinit { try? close() }

    /// Marks a clean stop, so the next start needs no seq gap.
    public func close() throws {
        guard memory.isEmpty else { return }  // events only in memory: the next start must skip their seqs
        try setMeta("clean", 1)
    }

    static func openChecked(_ path: String) throws -> Connection {
        let c = try Connection(path: path)
        let result = try c.text("PRAGMA quick_check")
        guard result == "ok" else {
            throw SQLiteError(code: 11, extendedCode: 11, message: "quick_check: \(result ?? "no answer")")
        }
        return c
    }

    /// `outbox.sqlite` → `outbox.corrupt-20261124T072234Z.sqlite`, with its -wal and -shm.
    static func moveAside(_ path: String, at time: WallTime) throws -> String {
        let c = CivilDateTime(time, utcOffsetSeconds: 0)
        func p(_ v: Int, _ w: Int = 2) -> String { String(repeating: "0", count: max(0, w - String(v).count)) + String(v) }
        let stamp = "\(p(c.year, 4))\(p(c.month))\(p(c.day))T\(p(c.hour))\(p(c.minute))\(p(c.second))Z"
        let dir = path.parentDirectory
        let target = (dir == "/" ? "" : dir) + "/outbox.corrupt-\(stamp).sqlite"
        guard rename(path, target) == 0 else {
            throw SQLiteError(code: 10, extendedCode: 10, message: "cannot move the damaged outbox aside to \(target): errno \(errno)")
        }
        for suffix in ["-wal", "-shm"] { rename(path + suffix, target + suffix) }
        return target
    }

    static var migrator: Migrator {
        var m = Migrator()
        m.add(version: 1, """
            CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER, text TEXT);
            CREATE TABLE events (
                seq INTEGER PRIMARY KEY,
                event_id TEXT NOT NULL UNIQUE,
                lane INTEGER NOT NULL,
                class TEXT NOT NULL,
                type TEXT NOT NULL,
                priority INTEGER NOT NULL,
                sensor TEXT,
                occurred_ns INTEGER NOT NULL,
                payload BLOB NOT NULL,
                batch_id TEXT
            );
            CREATE INDEX events_queue ON events (lane, batch_id, priority DESC, seq);
            CREATE TABLE batches (batch_id TEXT PRIMARY KEY, lane INTEGER NOT NULL, body BLOB NOT NULL, created_ns INTEGER NOT NULL);
            CREATE TABLE dead_letters (
                seq INTEGER PRIMARY KEY,
                event_id TEXT NOT NULL UNIQUE,
                lane INTEGER NOT NULL,
                class TEXT NOT NULL,
                type TEXT NOT NULL,
                priority INTEGER NOT NULL,
                sensor TEXT,
                occurred_ns INTEGER NOT NULL,
                payload BLOB NOT NULL,
                reason TEXT NOT NULL,
                rejected_ns INTEGER NOT NULL
            );
            CREATE TABLE rule_state (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL);
            """)
        // Alarms received by the platform but not yet acknowledged by an operator: kept with their
        // bytes, so a restart goes on following them and a platform that lost one gets it again.
        m.add(version: 2, """
            CREATE TABLE followed_alarms (
                seq INTEGER PRIMARY KEY,
                event_id TEXT NOT NULL UNIQUE,
                lane INTEGER NOT NULL,
                class TEXT NOT NULL,
                type TEXT NOT NULL,
                priority INTEGER NOT NULL,
                sensor TEXT,
                occurred_ns INTEGER NOT NULL,
                payload BLOB NOT NULL,
                location TEXT NOT NULL,
                accepted_ns INTEGER NOT NULL,
                status TEXT NOT NULL,
                escalation_id TEXT
            );
            """)
        return m
    }

    // MARK: Storing

    /// Stores events (and the rule state that produced them) in one transaction. Returns their
    /// seqs. When this returns, every alarm-lane event is on disk, or, if the disk takes no
    /// writes (full, failing, locked by another process), held in memory, sendable from there,
    /// and written by a later call; it throws only when it did not accept the events.
    @discardableResult
    public func append(_ events: [Event], ruleState: EngineState? = nil) throws -> [UInt64] {
        if hold != nil, mayTryDisk { try? flushMemory() }
        let stored = events.map(prepare)
        var failure: SQLiteError? = nil
        if hold == nil {
            for attempt in 0..<2 {
                do {
                    try setSynchronous(full: stored.contains { $0.lane == .alarm })
                    try db.transaction {
                        for e in stored { try insert(e) }
                        rows += stored.count
                        bytes += stored.reduce(0) { $0 + Int64($1.payload.count) }
                        if let ruleState { try saveRuleState(ruleState) }
                        try setMeta("next_seq", Int64(nextSeq))
                        try enforceCapacity()
                    }
                    return stored.map(\.seq)
                } catch let error as SQLiteError where error.isStorageFailure {
                    // Rolled back. The seqs stay taken (never reused). The WAL itself may be
                    // what fills the disk (it grows to 32 MB between idle checkpoints): fold it
                    // into the database, truncate it, try once more; else to memory below.
                    try? reloadAfterRollback()
                    failure = error
                    if error.isFull, attempt == 0, (try? checkpoint()) != nil { continue }
                    break
                }
            }
        }
        let incomingAlarms = stored.filter { $0.lane == .alarm }.count
        guard memory.filter({ $0.lane == .alarm }).count + incomingAlarms <= limits.memoryEvents else {
            throw OutboxError.memoryFull(limit: limits.memoryEvents, cause: hold?.cause ?? failure.map(Self.cause) ?? "?")
        }
        memory += stored
        if let failure { holdInMemory(failure) }
        if let ruleState { memoryRuleState = ruleState }
        trimMemory()
        return stored.map(\.seq)
    }

    /// Gives the event its seq (unless it was stamped before, from `seqs`) and its bytes.
    func prepare(_ event: Event) -> StoredEvent {
        var e = event
        if e.seq == nil { e.seq = seqs.take() }
        return StoredEvent(e)
    }

    func insert(_ e: StoredEvent) throws {
        try db.cached("""
            INSERT INTO events (seq, event_id, lane, class, type, priority, sensor, occurred_ns, payload)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).bind(Outbox.columns(e)).run()
    }

    /// An event's values for the columns every event table shares, in their order:
    /// seq, event_id, lane, class, type, priority, sensor, occurred_ns, payload.
    static func columns(_ e: StoredEvent) -> [SQLiteValue] {
        [.integer(Int64(e.seq)), .text(e.eventID.description), .integer(e.lane.code), .text(e.eventClass.rawValue),
         .text(e.type), .integer(Int64(e.priority)), e.sensor.map(SQLiteValue.text) ?? .null,
         .integer(e.occurredAt.nanosecondsSinceEpoch), .blob(e.payload)]
    }

    /// Inserts an event of the outbox's own inside a running transaction.
    func insertOwn(_ event: Event) throws -> EventID {
        let e = prepare(event)
        try insert(e)
        rows += 1
        bytes += Int64(e.payload.count)
        try setMeta("next_seq", Int64(nextSeq))
        return e.eventID
    }

    func setSynchronous(full: Bool) throws {
        guard synchronousFull != full else { return }
        // FULL syncs the WAL at every commit: an alarm is on disk when append returns. NORMAL
        // leaves bulk-only commits to the next checkpoint's sync: still consistent after a crash.
        try db.execute("PRAGMA synchronous = \(full ? "FULL" : "NORMAL")")
        synchronousFull = full
    }

    func setMeta(_ key: String, _ value: Int64) throws {
        try db.cached("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(.text(key), .integer(value)).run()
    }

    func setMetaText(_ key: String, _ text: String?) throws {
        try db.prepare("INSERT INTO meta (key, text) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET text = excluded.text")
            .bind(.text(key), text.map(SQLiteValue.text) ?? .null).run()
    }

    func addCounter(_ key: String, _ delta: Int64) throws {
        guard delta != 0 else { return }
        try db.prepare("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = value + excluded.value")
            .bind(.text(key), .integer(delta)).run()
    }

    /// A rolled-back transaction may have evicted rows or raised pressure in memory only.
    func reloadAfterRollback() throws {
        try recount()
        pressure = try db.text("SELECT text FROM meta WHERE key = 'pressure_id'").flatMap(EventID.init)
    }

    func recount() throws {
        let s = try db.prepare("SELECT COUNT(*), COALESCE(SUM(length(payload)), 0) FROM events")
        _ = try s.step()
        rows = Int(s.int64(0))
        bytes = s.int64(1)
        countedAt = try db.integer("PRAGMA data_version")
    }

    var overLimit: Bool { rows > limits.maxRows || bytes > limits.maxBytes }
    /// 1 % of each limit (at least one): how far log eviction goes below the limits, and how far
    /// the outbox may grow past a floor it could not get below, before the next pass.
    var capacitySlack: (rows: Int, bytes: Int64) { (max(limits.maxRows / 100, 1), max(limits.maxBytes / 100, 1)) }
    var underLowWater: Bool { rows <= limits.maxRows - capacitySlack.rows && bytes <= limits.maxBytes - capacitySlack.bytes }

    /// Inside an append's transaction: evict what the policy allows until the outbox fits. Runs
    /// its scans only when the outbox is over a limit and has grown by 1 % of it since the last
    /// pass: at every append they cost 64 ms at 24 MiB here (seconds on a hub's SD card), and
    /// every event of a long outage, alarms too, would pay them.
    func enforceCapacity() throws {
        guard overLimit else { return }
        if let floor = capacityFloor, rows <= floor.rows + capacitySlack.rows, bytes <= floor.bytes + capacitySlack.bytes { return }
        if try db.integer("PRAGMA data_version") != countedAt {
            try recount()  // another connection changed the outbox
            guard overLimit else { return }
        }
        var evictedLog: Int64 = 0
        while !underLowWater {
            let s = try db.prepare("SELECT seq, length(payload) FROM events WHERE class = 'log' AND batch_id IS NULL ORDER BY seq LIMIT 256")
            var victims: [(Int64, Int64)] = []
            while try s.step() { victims.append((s.int64(0), s.int64(1))) }
            guard !victims.isEmpty else { break }
            for (seq, size) in victims where !underLowWater {
                try db.prepare("DELETE FROM events WHERE seq = ?").bind(.integer(seq)).run()
                rows -= 1
                bytes -= size
                evictedLog += 1
            }
        }
        var coalesced: Int64 = 0
        if overLimit {
            // Keep the newest state per sensor (and kind of state); the platform applies state
            // last-writer-wins by seq, so older ones carry no information it still needs.
            try db.execute("""
                DELETE FROM events WHERE class = 'state' AND batch_id IS NULL
                AND seq NOT IN (SELECT MAX(seq) FROM events WHERE class = 'state' GROUP BY sensor, type)
                """)
            coalesced = Int64(db.changes)
            try recount()
        }
        try addCounter("evicted_log", evictedLog)
        try addCounter("coalesced_state", coalesced)
        if pressure == nil {
            let id = try insertOwn(makeEvent(.outboxPressure, .active, nil, [
                ("evictedLog", .int(evictedLog)), ("coalescedState", .int(coalesced)),
                ("rows", .int(Int64(rows))), ("bytes", .int(bytes)),
                ("maxRows", .int(Int64(limits.maxRows))), ("maxBytes", .int(limits.maxBytes)),
            ]))
            pressure = id
            try setMetaText("pressure_id", id.description)
        }
        capacityFloor = overLimit ? (rows, bytes) : nil
    }

    /// Inside a settle's transaction: the pressure is over once the outbox is below 80 % of both limits.
    func clearPressureIfRelieved() throws {
        guard let active = pressure, Double(rows) < Double(limits.maxRows) * 0.8, Double(bytes) < Double(limits.maxBytes) * 0.8 else { return }
        _ = try insertOwn(makeEvent(.outboxPressure, .cleared, active, [("rows", .int(Int64(rows))), ("bytes", .int(bytes))]))
        pressure = nil
        try setMetaText("pressure_id", nil)
    }

    /// Copies the WAL into the database and truncates it. Run when idle: it costs fsyncs that
    /// should not land on an alarm's write path.
    public func checkpoint() throws {
        try db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    /// Runs (inside the commit that found the WAL past `OutboxCheckpointer.walPages`) to wake
    /// the checkpointer. Unset: only the 4 MB backstop checkpoints.
    public func onWALGrowth(_ body: @escaping @Sendable () -> Void) {
        walActivity.onGrowth.withLock { $0 = body }
    }

    // MARK: Rule state

    func saveRuleState(_ state: EngineState) throws {
        try db.cached("INSERT INTO rule_state (id, state) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state")
            .bind(.text(state.json.serialized)).run()
    }

    /// The rule engine's state as last committed with its events, or nil on a fresh outbox.
    public func loadRuleState() throws -> EngineState? {
        if let state = memoryRuleState { return state }
        guard let text = try db.text("SELECT state FROM rule_state WHERE id = 1") else { return nil }
        return try EngineState(json: JSONValue.parse(text))
    }

    // MARK: Sending

    /// The bulk lane's next batch: the one already made and not yet settled (same id, same
    /// bytes), or a new one of up to `maxCount` events and `maxBytes` bytes (at least one event),
    /// highest priority first, then oldest. `body` writes the request body for the uplink. (The
    /// alarm lane keeps no batches: `queuedAlarms`.)
    /// `skipping`: stored batches not to offer again (the one on its way while the next is made).
    public func nextBatch(maxCount: Int, maxBytes: Int, skipping: Set<String> = [], body: (_ batchID: String, _ events: [StoredEvent]) -> [UInt8]) throws -> OutboxBatch? {
        if let batch = memoryBatch { return batch }
        let lane = Lane.bulk
        let waiting = memory.filter { $0.lane == lane }.sorted(by: Outbox.sendOrder)
        do {
            if let batch = try storedBatch(skipping: skipping) { return batch }
        } catch let error as SQLiteError where error.isStorageFailure && !waiting.isEmpty {
            // The disk cannot even be read: what memory holds goes out all the same.
        }
        let candidates = waiting.isEmpty ? try queued(lane, limit: maxCount) : waiting
        var chosen: [StoredEvent] = []
        var size = 0
        for e in candidates.prefix(maxCount) {
            if !chosen.isEmpty && size + e.payload.count > maxBytes { break }
            chosen.append(e)
            size += e.payload.count
        }
        guard !chosen.isEmpty else { return nil }
        let id = EventID.v7(unixMilliseconds: now().millisecondsSinceEpoch, using: &rng).description
        var batch = OutboxBatch(id: id, lane: lane, body: body(id, chosen), events: chosen, inMemory: !waiting.isEmpty)
        if !batch.inMemory {
            // A batch's bookkeeping needs no fsync of its own: if power loss takes it, its
            // events are batched again under a new key and the platform answers the ones it
            // already has as duplicates (per eventId). While the disk takes no writes the batch
            // is still sendable, its bytes in memory until settled.
            try writeOrKeep(synced: false, { try db.transaction { try storeBatch(batch) } }, else: { batch.inMemory = true })
        }
        if batch.inMemory { memoryBatch = batch }
        return batch
    }

    /// The alarm lane's next alarms, in the order they go (highest priority, then oldest): those
    /// held in memory while the disk takes no writes among the stored ones; not those in
    /// `skipping` (delivered, their settlement on its way), nor those delivered while the disk
    /// took no writes. A read only: each alarm goes alone (`OutboxBatch.alarm`), so the alarm
    /// lane writes nothing on an alarm's way out, and a write that hangs is never its own.
    public func queuedAlarms(skipping: Set<EventID>, limit: Int) throws -> [StoredEvent] {
        let held = memory.filter { $0.lane == .alarm && !skipping.contains($0.eventID) }
        var stored: [StoredEvent] = []
        do {
            // No alarm-lane event is in a batch (those of an older agent are let go at open).
            stored = try queued(.alarm, limit: limit + skipping.count).filter { !skipping.contains($0.eventID) }
        } catch let error as SQLiteError where error.isStorageFailure && !held.isEmpty {
            // The disk cannot even be read: what memory holds goes out all the same.
        }
        return (held + stored).sorted(by: Outbox.sendOrder).prefix(limit).map { $0 }
    }

    /// Inside a transaction: the batch's bytes, and its events marked as taken by it.
    func storeBatch(_ batch: OutboxBatch) throws {
        try db.cached("INSERT INTO batches (batch_id, lane, body, created_ns) VALUES (?, ?, ?, ?)")
            .bind(.text(batch.id), .integer(batch.lane.code), .blob(batch.body), .integer(now().nanosecondsSinceEpoch)).run()
        let mark = try db.cached("UPDATE events SET batch_id = ? WHERE seq = ?")
        for e in batch.events { try mark.bind(.text(batch.id), .integer(Int64(e.seq))).run() }
    }

    /// The order events go in: highest priority first, then oldest.
    public static func sendOrder(_ a: StoredEvent, _ b: StoredEvent) -> Bool {
        (a.priority, b.seq) > (b.priority, a.seq)
    }

    func storedBatch(skipping: Set<String> = []) throws -> OutboxBatch? {
        let lane = Lane.bulk
        // Skipping the batches delivered while the disk took no writes (a handful at most).
        let settled = (unrecorded.filter { !$0.batch.inMemory }.map(\.batch.id) + skipping.sorted()).map { SQLiteValue.text($0) }
        let s = try db.prepare("""
            SELECT batch_id, body FROM batches WHERE lane = ?\(settled.isEmpty ? "" : " AND batch_id NOT IN (\(placeholders(settled.count)))")
            ORDER BY created_ns LIMIT 1
            """).bind([.integer(lane.code)] + settled)
        guard try s.step(), let id = s.text(0) else { return nil }
        let body = s.blob(1)
        let events = try fetch(where: "batch_id = ?", [.text(id)], limit: Int.max)
        return OutboxBatch(id: id, lane: lane, body: body, events: events, inMemory: false)
    }

    /// The lane's events not yet in a batch. While the disk takes no writes, not those already
    /// delivered (`awaitingRecord`), and none at all once a memory queue's worth of them is
    /// (the rest waits for the disk).
    func queued(_ lane: Lane, limit: Int) throws -> [StoredEvent] {
        guard !awaitingRecord.isEmpty else { return try fetch(where: "lane = ? AND batch_id IS NULL", [.integer(lane.code)], limit: limit) }
        guard awaitingRecord.count < limits.memoryEvents else { return [] }
        return try fetch(where: "lane = ? AND batch_id IS NULL", [.integer(lane.code)], limit: limit + awaitingRecord.count)
            .filter { !awaitingRecord.contains($0.eventID) }.prefix(limit).map { $0 }
    }

    func placeholders(_ n: Int) -> String { Array(repeating: "?", count: n).joined(separator: ", ") }

    func fetch(where condition: String, _ values: [SQLiteValue], limit: Int) throws -> [StoredEvent] {
        let s = try db.prepare("""
            SELECT seq, event_id, lane, class, type, priority, sensor, occurred_ns, payload FROM events
            WHERE \(condition) ORDER BY priority DESC, seq LIMIT ?
            """).bind(values + [.integer(Int64(min(limit, Int(Int32.max))))])
        var out: [StoredEvent] = []
        while try s.step() { out.append(storedEvent(s)) }
        return out
    }

    /// A queued event from a row whose first columns are those `fetch` selects. An id column
    /// the card damaged is read around (`recoveredID`), never unwrapped: a crash here would come
    /// back at every start, and no alarm would go out again. The row is mended at the next
    /// write (`writeOrKeep`, `repairDamagedIDs`).
    func storedEvent(_ row: Statement, defaultClass: EventClass = .log) -> StoredEvent {
        let seq = UInt64(row.int64(0)), occurredAt = WallTime(nanosecondsSinceEpoch: row.int64(7)), payload = row.blob(8)
        let id = row.text(1).flatMap(EventID.init) ?? {
            damagedSeqs.insert(seq)
            return Self.recoveredID(seq: seq, payload: payload, occurredAt: occurredAt)
        }()
        return StoredEvent(
            seq: seq, eventID: id, lane: Lane(code: row.int64(2)),
            eventClass: EventClass(rawValue: row.text(3) ?? "") ?? defaultClass, type: row.text(4) ?? "", priority: Int(row.int64(5)),
            sensor: row.text(6), occurredAt: occurredAt, payload: payload)
    }

    /// Records what the platform said: delivered events leave, rejected ones become dead letters
    /// with the reason, and events it did not answer for go back to the queue for a new batch.
    /// If the disk takes no writes, the outcome is kept and recorded with the memory queue: the
    /// lane goes on to the next event (a delivered alarm is never sent again for a failing disk).
    ///
    /// `at`: when the platform answered, if not now (an alarm sent while its write hung is
    /// settled when written; its following counts from the answer).
    public func settle(_ batch: OutboxBatch, outcomes: [EventID: DeliveryOutcome], at: WallTime? = nil) throws {
        let settlement = Settlement(batch: batch, outcomes: outcomes, onlyInMemory: Set(memory.map(\.eventID)), at: at ?? now())
        if settlement.touchesDisk {
            // As for making the batch: a settle lost to power loss is a resend the platform
            // answers as duplicates (an alarm's with its record, so it is followed again).
            try writeOrKeep(synced: false, {
                try db.transaction { try record(settlement) }
                followedAsRead += settlement.followed
            }, else: { postpone(settlement) })
        }
        memory.removeAll { e in outcomes[e.eventID] != nil }
        if memoryBatch?.id == batch.id { memoryBatch = nil }
    }

    /// Inside a transaction: a settlement's rows.
    func record(_ settlement: Settlement) throws {
        let (batch, outcomes) = (settlement.batch, settlement.outcomes)
        for e in batch.events {
            // The event's row: by seq, with its id, or with an id the card damaged since it was read.
            let row: [SQLiteValue] = [.integer(Int64(e.seq)), .text(e.eventID.description)]
            guard let outcome = outcomes[e.eventID] else {
                try db.cached(Self.unbatchEventRow).bind(row).run()
                continue
            }
            switch outcome {
            case .delivered:
                break
            case .deliveredFollowing(let location):
                try db.prepare("""
                    INSERT OR IGNORE INTO followed_alarms (seq, event_id, lane, class, type, priority, sensor, occurred_ns, payload, location, accepted_ns, status)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'received')
                    """).bind(Outbox.columns(e) + [.text(location), .integer(settlement.at.nanosecondsSinceEpoch)]).run()
            case .rejected(let reason):
                try db.prepare("""
                    INSERT OR IGNORE INTO dead_letters (seq, event_id, lane, class, type, priority, sensor, occurred_ns, payload, reason, rejected_ns)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """).bind(Outbox.columns(e) + [.text(reason), .integer(settlement.at.nanosecondsSinceEpoch)]).run()
            }
            // Settled either way: out of the queue.
            try db.cached(Self.deleteEventRow).bind(row).run()
        }
        try db.prepare("DELETE FROM batches WHERE batch_id = ?").bind(.text(batch.id)).run()
        let gone = batch.events.filter { outcomes[$0.eventID] != nil && !settlement.onlyInMemory.contains($0.eventID) }
        rows -= gone.count
        bytes -= gone.reduce(0) { $0 + Int64($1.payload.count) }
        // Deliveries lower the floor: the next pass comes after 1 % of growth from here.
        capacityFloor = capacityFloor.map { (min($0.rows, rows), min($0.bytes, bytes)) }
        try clearPressureIfRelieved()
    }

    /// Rewrites queued events, one bounded step at a time: the clock correction re-stamps events
    /// made before sync. A step looks at most at `window` seqs after where the last one ended and
    /// rewrites at most `limit` events of them, in one transaction: the alarm lane's part of the
    /// queue first, then the bulk lane's, in seq order. It says where the next step begins (nil:
    /// the pass is over). Each part reads the queue once, in order, however its events lie (a
    /// lane part read through the queue index would be sorted anew at every step: with a full
    /// outbox of technical events, quadratic). Between steps the outbox is free:
    /// an alarm raised or sent meanwhile waits for one step, never for the whole backlog (a day
    /// queued without network is tens of thousands of events, seconds on an SD card), and memory
    /// and the WAL hold one step's events. Progress is kept: a step that fails (the disk full)
    /// is tried again from its own cursor.
    ///
    /// An alarm-lane event is rewritten in place even while being retried (each is its own
    /// request, made from the event at every attempt, deduplicated by eventId). A bulk batch holding a rewritten event is dissolved
    /// instead, its events queued again for a new batch under a new Idempotency-Key: a retry under
    /// one key must be byte-identical. If the platform did take the old batch (its answer lost),
    /// it answers the events again as duplicates and keeps the first stamps.
    ///
    /// `containing` skips, in SQL, every stored event whose payload lacks those bytes, so that
    /// what needs no rewrite is not parsed. The first step does the events held in memory (the
    /// disk took no writes) before its stored part, so they are done even if that part fails.
    public func rewriteQueued(containing needle: String? = nil, from cursor: RewriteCursor = .start, limit: Int = 256, window: Int = 4096,
                              _ transform: (StoredEvent) -> (payload: [UInt8], occurredAt: WallTime)?) throws -> RewriteStep {
        var rewritten: [EventID: (payload: [UInt8], occurredAt: WallTime)] = [:]
        if cursor == .start {
            for i in memory.indices {
                guard let new = transform(memory[i]) else { continue }
                memory[i].payload = new.payload
                memory[i].occurredAt = new.occurredAt
                rewritten[memory[i].eventID] = new
            }
        }
        // A batch kept in memory (the disk took no writes when it was made) may hold stored events
        // too: dissolved if anything of it is rewritten, whether or not the stored part succeeds.
        defer {
            if let batch = memoryBatch, batch.events.contains(where: { rewritten[$0.eventID] != nil }) {
                memoryBatch = nil
            }
        }
        // The alarm lane's part is synced like its events; the rest rides the next commit's or
        // checkpoint's sync (a rewrite lost to a power cut leaves the event as it was, flagged).
        try setSynchronous(full: cursor.lane == .alarm)
        var stored: [EventID: (payload: [UInt8], occurredAt: WallTime)] = [:]
        var seen = 0, last = cursor.after, grown: Int64 = 0
        let windowEnd = cursor.after &+ UInt64(max(1, window))
        try db.transaction {
            // Straight through the table by seq (`+lane`: not through the queue index).
            var conditions = ["seq > ?", "seq <= ?", "+lane = ?"]
            var values: [SQLiteValue] = [.integer(Int64(clamping: cursor.after)), .integer(Int64(clamping: windowEnd)), .integer(cursor.lane.code)]
            if let needle {
                conditions.append("instr(payload, ?) > 0")
                values.append(.blob(Array(needle.utf8)))
            }
            let select = try db.prepare("""
                SELECT seq, event_id, lane, class, type, priority, sensor, occurred_ns, payload, batch_id FROM events
                WHERE \(conditions.joined(separator: " AND ")) ORDER BY seq LIMIT ?
                """).bind(values + [.integer(Int64(max(1, min(limit, Int(Int32.max)))))])
            let update = try db.prepare("UPDATE events SET payload = ?, occurred_ns = ? WHERE seq = ?")
            var dissolve: Set<String> = []
            while try select.step() {
                let e = storedEvent(select)
                seen += 1
                last = e.seq
                guard let new = transform(e) else { continue }
                try update.bind(.blob(new.payload), .integer(new.occurredAt.nanosecondsSinceEpoch), .integer(Int64(e.seq))).run()
                grown += Int64(new.payload.count - e.payload.count)
                stored[e.eventID] = new
                if let batch = select.text(9) { dissolve.insert(batch) }
            }
            for batch in dissolve {
                try db.prepare("DELETE FROM batches WHERE batch_id = ?").bind(.text(batch)).run()
                try db.prepare("UPDATE events SET batch_id = NULL WHERE batch_id = ?").bind(.text(batch)).run()
            }
        }
        bytes += grown
        rewritten.merge(stored) { _, new in new }
        // On from the last event looked at if the limit ended the step, else from the window's
        // end; past the highest seq given out, this part of the pass is done.
        let next: RewriteCursor? = seen >= limit ? RewriteCursor(lane: cursor.lane, after: last)
            : windowEnd < nextSeq - 1 ? RewriteCursor(lane: cursor.lane, after: windowEnd)
            : cursor.lane == .alarm ? RewriteCursor(lane: .bulk, after: 0) : nil
        return RewriteStep(rewritten: rewritten.count, next: next)
    }

    /// Small durable notes of the uplink (the last command seen, the config ETag in force),
    /// kept with the events so they survive the same way.
    public func note(_ key: String) throws -> String? {
        if let held = notesHeld[key] { return held }
        let s = try db.prepare("SELECT text FROM meta WHERE key = ?").bind(.text("note." + key))
        return try s.step() ? s.text(0) : nil
    }

    /// `synced`: on disk when this returns, and with it every commit before (a note that says
    /// the unsynced commits before it are done); otherwise it rides the next sync.
    public func setNote(_ key: String, _ text: String?, synced: Bool = false) throws {
        try writeOrKeep(synced: synced ? true : nil, {
            try setMetaText("note." + key, text)
            notesHeld[key] = nil
        }, else: { notesHeld[key] = .some(text) })
    }

    // MARK: Following alarms

    /// Alarms the platform received and no operator has acknowledged yet, oldest first.
    public func followedAlarms() throws -> [FollowedAlarm] {
        var out: [FollowedAlarm]
        do {
            out = try readFollowedAlarms()
            followedAsRead = out
        } catch let error as SQLiteError where error.isStorageFailure {
            // The disk cannot be read: as last read, with what changed since (below; a change
            // written since the read, an alarm ended, at worst costs one more status read).
            out = followedAsRead
        }
        return hold == nil ? out : withChangesHeld(out)
    }

    /// While the disk takes no writes: `alarms` with those received meanwhile, and what changed since.
    func withChangesHeld(_ alarms: [FollowedAlarm]) -> [FollowedAlarm] {
        (alarms + unrecorded.flatMap(\.followed)).compactMap { Self.applying(followUps[$0.event.eventID], to: $0) }
            .sorted { $0.event.seq < $1.event.seq }
    }

    /// The alarm after `change`: nil once its following ended.
    public static func applying(_ change: FollowUp?, to alarm: FollowedAlarm) -> FollowedAlarm? {
        switch change {
        case nil: return alarm
        case .ended?: return nil
        case .status(let status, let escalation)?:
            var changed = alarm
            (changed.status, changed.escalation) = (status, escalation)
            return changed
        }
    }

    func readFollowedAlarms() throws -> [FollowedAlarm] {
        let s = try db.prepare("""
            SELECT seq, event_id, lane, class, type, priority, sensor, occurred_ns, payload, location, accepted_ns, status, escalation_id
            FROM followed_alarms ORDER BY seq
            """)
        var out: [FollowedAlarm] = []
        while try s.step() {
            let event = storedEvent(s, defaultClass: .alarm)
            out.append(FollowedAlarm(event: event, location: s.text(9) ?? "", acceptedAt: WallTime(nanosecondsSinceEpoch: s.int64(10)),
                                     status: s.text(11) ?? "received", escalation: s.text(12).flatMap(EventID.init)))
        }
        return out
    }

    /// A follow-up of a followed alarm: the platform's latest status and the `alarm.unacknowledged`
    /// event once it was escalated, or the end of following (an operator acknowledged it, or the
    /// platform closed it). Written now, or kept for `flushMemory` while the disk takes no writes
    /// (or the alarm, received meanwhile, is not in the table yet): an escalation forgotten would
    /// be raised, and sent to the secondary platform, again.
    public func follow(_ id: EventID, _ change: FollowUp) throws {
        // Synced: an escalation recorded (if power loss took it, the alarm would be escalated,
        // and sent to the secondary platform, again). An ending or a status lost to power loss
        // costs one more status read.
        let escalates: Bool
        if case .status(_, let escalation) = change { escalates = escalation != nil } else { escalates = false }
        try writeOrKeep(synced: escalates, {
            try apply(change, to: id)
            followUps[id] = db.changes == 0 && hold != nil ? change : nil
            // The list the disk may not be able to give again says the same as the table.
            followedAsRead = followedAsRead.compactMap { $0.event.eventID == id ? Self.applying(change, to: $0) : $0 }
        }, else: { followUps[id] = change })
    }

    func apply(_ change: FollowUp, to id: EventID) throws {
        switch change {
        case .ended:
            try db.prepare("DELETE FROM followed_alarms WHERE event_id = ?").bind(.text(id.description)).run()
        case .status(let status, let escalation):
            try db.prepare("UPDATE followed_alarms SET status = ?, escalation_id = ? WHERE event_id = ?")
                .bind(.text(status), escalation.map { .text($0.description) } ?? .null, .text(id.description)).run()
        }
    }

    /// The platform no longer knows the alarm (404): it goes back to the alarm lane, same id and
    /// bytes, to be posted again.
    public func requeueFollowed(_ id: EventID) throws {
        var added: (rows: Int, bytes: Int64) = (0, 0)
        try writeOrKeep(synced: true, {
            try db.transaction {
                try db.prepare("""
                    INSERT OR IGNORE INTO events (seq, event_id, lane, class, type, priority, sensor, occurred_ns, payload)
                    SELECT seq, event_id, lane, class, type, priority, sensor, occurred_ns, payload FROM followed_alarms WHERE event_id = ?
                    """).bind(.text(id.description)).run()
                if db.changes > 0 {
                    let size = try db.prepare("SELECT length(payload) FROM events WHERE event_id = ?").bind(.text(id.description))
                    added = (1, try size.step() ? size.int64(0) : 0)
                }
                try db.prepare("DELETE FROM followed_alarms WHERE event_id = ?").bind(.text(id.description)).run()
            }
            followedAsRead.removeAll { $0.event.eventID == id }
        }, else: {})
        // Counted, not recounted: a count reads the whole queue, and this alarm is on its way out again.
        rows += added.rows
        bytes += added.bytes
        guard added.rows == 0, hold != nil else { return }
        // The disk takes no writes, or the alarm is not in the table yet: sent again from memory,
        // its following ended when memory is written.
        if let alarm = try? followedAlarms().first(where: { $0.event.eventID == id }), !memory.contains(where: { $0.eventID == id }) {
            memory.append(alarm.event)
        }
        followUps[id] = .ended
    }

    // MARK: Reading the queue

    /// How long the bulk lane waits for a fuller batch: zero when a batch is already made (resend
    /// it), the queue holds `fill` events, or its first event is `upTo` old (a backlog never waits).
    public func linger(fill: Int, upTo: Duration) throws -> Duration {
        guard hold == nil, memoryBatch == nil else { return .zero }
        let (count, oldest) = try unbatched(upTo: fill)
        guard count > 0, count < fill else { return .zero }
        if try db.integer("SELECT EXISTS (SELECT 1 FROM batches)") == 1 { return .zero }
        let age = now() - oldest
        return age >= upTo || age < .zero ? .zero : upTo - age
    }

    /// How many bulk events wait outside any batch (counted up to `fill`), and when the oldest
    /// of those counted occurred.
    func unbatched(upTo fill: Int) throws -> (count: Int, oldest: WallTime) {
        let s = try db.cached("""
            SELECT COUNT(*), MIN(occurred_ns) FROM (SELECT occurred_ns FROM events WHERE lane = ? AND batch_id IS NULL LIMIT ?)
            """).bind(.integer(Lane.bulk.code), .integer(Int64(fill)))
        defer { s.reset() }
        guard try s.step() else { return (0, now()) }
        return (Int(s.int64(0)), WallTime(nanosecondsSinceEpoch: s.int64(1)))
    }

    /// Whether a whole batch (`fill` events) of the bulk lane waits outside any batch, with the
    /// disk taking writes and nothing held in memory: a backlog, whose next batch can be made
    /// while the last is on its way. Fresh events wait for a fuller batch instead (`linger`).
    public func backlogHolds(_ fill: Int) throws -> Bool {
        guard hold == nil, memoryBatch == nil, awaitingRecord.isEmpty, !memory.contains(where: { $0.lane == .bulk }) else { return false }
        return try unbatched(upTo: fill).count >= fill
    }

    /// Whether `lane` has an event waiting, from the queue index alone: asked before every bulk
    /// batch (alarms first), where `status()` would scan a long backlog each time.
    public func hasQueued(_ lane: Lane) throws -> Bool {
        if memory.contains(where: { $0.lane == lane }) { return true }
        guard awaitingRecord.isEmpty else {
            // Delivered while the disk took no writes, still in the table: not waiting.
            let s = try db.prepare("SELECT event_id FROM events WHERE lane = ? LIMIT ?").bind(.integer(lane.code), .integer(Int64(awaitingRecord.count + 1)))
            while try s.step() { if let id = s.text(0).flatMap(EventID.init), !awaitingRecord.contains(id) { return true } }
            return false
        }
        let s = try db.cached("SELECT EXISTS (SELECT 1 FROM events WHERE lane = ?)").bind(.integer(lane.code))
        defer { s.reset() }
        return try s.step() && s.int64(0) == 1
    }

    /// `sizes: false` counts the lanes through the queue index alone and leaves each lane's
    /// `bytes` at 0 and `oldest` nil: what `vaktpost status` needs, 4 ms at 100,000 queued here
    /// against 32 ms for the sizes and oldest stamps, which read every event with the outbox held.
    public func status(sizes: Bool = true) throws -> OutboxStatus {
        var s = try Outbox.status(of: db, sizes: sizes)
        s.inMemory = memory.count
        s.nextSeq = nextSeq
        s.writeFailure = hold?.cause ?? standingIn.map { "\($0.path): \($0.cause)" }
        return s
    }

    /// The queue's depth and head without reading it through, for the rules loop's status line
    /// and the heartbeat: `status()` counts every row (30 ms at 100,000 queued here, seconds
    /// from a cold SD card), with the outbox held and the rules loop waiting.
    public func summary() throws -> QueueSummary {
        let head = try db.cached("SELECT occurred_ns FROM events ORDER BY seq LIMIT 1")
        defer { head.reset() }  // cached: read to its end or not, it starts afresh next time
        let stored = try head.step() ? WallTime(nanosecondsSinceEpoch: head.int64(0)) : nil
        return QueueSummary(depth: rows - awaitingRecord.count + memory.count, oldest: [stored, memory.first?.occurredAt].compactMap { $0 }.min(),
                            nextSeq: nextSeq, evictedLog: try db.integer("SELECT value FROM meta WHERE key = 'evicted_log'") ?? 0)
    }

    static func status(of db: Connection, sizes: Bool = true) throws -> OutboxStatus {
        var lanes: [Lane: LaneStatus] = [.alarm: .empty, .bulk: .empty]
        let s = try db.prepare(sizes ? "SELECT lane, COUNT(*), SUM(length(payload)), MIN(occurred_ns) FROM events GROUP BY lane"
                                     : "SELECT lane, COUNT(*) FROM events GROUP BY lane")
        while try s.step() {
            lanes[Lane(code: s.int64(0))] = LaneStatus(depth: Int(s.int64(1)), bytes: sizes ? s.int64(2) : 0,
                                                       oldest: sizes ? WallTime(nanosecondsSinceEpoch: s.int64(3)) : nil)
        }
        return OutboxStatus(
            lanes: lanes,
            deadLetters: Int(try db.integer("SELECT COUNT(*) FROM dead_letters") ?? 0),
            evictedLog: try db.integer("SELECT value FROM meta WHERE key = 'evicted_log'") ?? 0,
            coalescedState: try db.integer("SELECT value FROM meta WHERE key = 'coalesced_state'") ?? 0,
            inMemory: 0,
            nextSeq: UInt64(try db.integer("SELECT value FROM meta WHERE key = 'next_seq'") ?? 1),
            // A read-only reader may meet a file from before the table existed.
            awaitingAcknowledgement: try db.integer("SELECT COUNT(*) FROM sqlite_master WHERE name = 'followed_alarms'") == 1
                ? Int(try db.integer("SELECT COUNT(*) FROM followed_alarms") ?? 0) : 0)
    }

    public func deadLetters() throws -> [DeadLetter] { try Outbox.deadLetters(in: db) }

    static func deadLetters(in db: Connection) throws -> [DeadLetter] {
        let s = try db.prepare("SELECT seq, event_id, type, class, reason, rejected_ns, payload, occurred_ns FROM dead_letters ORDER BY seq")
        var out: [DeadLetter] = []
        while try s.step() {
            out.append(DeadLetter(
                seq: UInt64(s.int64(0)), eventID: s.text(1).flatMap(EventID.init)
                    ?? recoveredID(seq: UInt64(s.int64(0)), payload: s.blob(6), occurredAt: WallTime(nanosecondsSinceEpoch: s.int64(7))),
                type: s.text(2) ?? "", eventClass: s.text(3) ?? "",
                reason: s.text(4) ?? "", rejectedAt: WallTime(nanosecondsSinceEpoch: s.int64(5))))
        }
        return out
    }

    /// Puts every dead letter back in the queue (after the platform fixed what it rejected them for).
    @discardableResult
    public func retryDeadLetters() throws -> Int {
        let n = try Outbox.retryDeadLetters(in: db)
        try recount()
        return n
    }

    static func retryDeadLetters(in db: Connection) throws -> Int {
        try db.transaction {
            try db.execute("""
                INSERT OR IGNORE INTO events (seq, event_id, lane, class, type, priority, sensor, occurred_ns, payload)
                SELECT seq, event_id, lane, class, type, priority, sensor, occurred_ns, payload FROM dead_letters
                """)
            let n = db.changes
            try db.execute("DELETE FROM dead_letters")
            return n
        }
    }
}

extension Lane {
    var code: Int64 { self == .alarm ? 0 : 1 }
    init(code: Int64) { self = code == 0 ? .alarm : .bulk }
}

/// The outbox seen from outside the daemon: `vaktpost queue` reads it without taking it over.
public enum OutboxFile {
    /// Opens read-only; works while the daemon writes (WAL readers never block the writer).
    public static func status(path: String) throws -> OutboxStatus {
        try Outbox.status(of: try Connection(path: path, mode: .readOnly))
    }

    public static func deadLetters(path: String) throws -> [DeadLetter] {
        try Outbox.deadLetters(in: try Connection(path: path, mode: .readOnly))
    }

    /// Writes: waits for the daemon's current transaction (busy timeout) and runs its own.
    public static func retryDeadLetters(path: String) throws -> Int {
        try Outbox.retryDeadLetters(in: try Connection(path: path))
    }
}

/// What a checkpointer needs to know of the writer, without taking the outbox's lock.
public final class WALActivity: Sendable {
    let onGrowth = Mutex<(@Sendable () -> Void)?>(nil)
    private let lastCommit = Atomic<UInt64>(0)
    private let walPages = Atomic<Int>(0)

    /// Tells the checkpointer once, when the WAL crosses `OutboxCheckpointer.walPages`: asking
    /// at every commit would wake it (a context switch) for every event of a burst.
    func committed(walPages pages: Int) {
        lastCommit.store(SystemClock.boottime(), ordering: .relaxed)
        let before = walPages.exchange(pages, ordering: .relaxed)
        if before < OutboxCheckpointer.walPages && pages >= OutboxCheckpointer.walPages { onGrowth.withLock { $0 }?() }
    }

    /// How long since the last commit. A checkpoint started in such a pause completes before
    /// the next write, which then starts the WAL over; one racing a stream of commits never
    /// completes and only competes with them for the disk.
    public var quietFor: Duration {
        // The commit may land between the two reads: never a negative (or wrapped) pause.
        let last = lastCommit.load(ordering: .relaxed), now = SystemClock.boottime()
        return now > last ? .nanoseconds(Int64(now - last)) : .zero
    }
}

/// Copies the outbox's WAL into the database from a connection of its own (a passive
/// checkpoint runs beside the writer and readers), on its owner's thread: the two fsyncs of a
/// checkpoint never hold the outbox, so an alarm's commit never waits behind them.
public final class OutboxCheckpointer {
    /// A commit that leaves the WAL at this many pages (1 MB) asks for a checkpoint.
    public static let walPages = 256
    /// A commit that finds the WAL this large (4 MB) checkpoints itself: the checkpointer is
    /// missing or behind.
    public static let backstopPages = 1000
    /// At most one checkpoint this often: while the writer keeps writing, the WAL cannot start
    /// over and every commit asks again; this bounds a checkpointer's fsyncs to 8 a second.
    public static let minimumInterval = Duration.milliseconds(250)
    /// A checkpoint waits for this long a pause in the commits (see `WALActivity.quietFor`).
    public static let quietBefore = Duration.milliseconds(5)

    let db: Connection

    public init(path: String) throws {
        db = try Connection(path: path)
        // A new connection opens the file lazily; until it has read it, a checkpoint finds no
        // WAL and copies nothing. Reading the journal mode opens it (and proves it is WAL).
        let mode = try db.text("PRAGMA journal_mode")
        guard mode == "wal" else { throw SQLiteError(code: 1, extendedCode: 1, message: "\(path) is in journal mode \(mode ?? "?"), not WAL") }
    }

    /// The checkpointer's life on `loop`'s thread (the daemon's, and outbox-probe's for the
    /// ingest benchmark): asleep until a commit grows the WAL past 1 MB (the caller has
    /// `Outbox.onWALGrowth` wake the loop) or `every` has passed, so that state events committed
    /// without their own fsync reach the disk; then a checkpoint in a pause of the commits, at
    /// most one per `minimumInterval`. `warn` gets a failed or slow checkpoint.
    public func run(on loop: BackgroundLoop, activity: WALActivity, every: Duration = .seconds(300), warn: (String) -> Void) {
        let clock = ContinuousClock()
        var due = false
        while !loop.isStopped {
            if !due { loop.sleep(every) }
            // In a pause of the writing, so that the checkpoint completes and the WAL starts over
            // (a steady stream is the commits' own 4 MB backstop's business).
            while !loop.isStopped, activity.quietFor < Self.quietBefore {
                loop.sleep(Self.quietBefore - activity.quietFor)
            }
            guard !loop.isStopped else { break }
            let began = clock.now
            do {
                try checkpoint()
            } catch {
                warn("outbox checkpoint failed: \(error); the outbox checkpoints inside its commits meanwhile")
            }
            let spent = clock.now - began
            if spent > .seconds(1) {
                let ms = spent.components.seconds * 1000 + spent.components.attoseconds / 1_000_000_000_000_000
                warn("an outbox checkpoint took \(ms) ms (a slow disk; alarms do not wait for it)")
            }
            // A commit that grows the WAL meanwhile makes the next checkpoint due at once after.
            due = false
            while !loop.isStopped, clock.now - began < Self.minimumInterval {
                if loop.sleep(Self.minimumInterval - (clock.now - began)) { due = true }
            }
        }
    }

    /// Copies the WAL into the database; true when all of it is (the next commit then starts
    /// the WAL over). Commits that land meanwhile add frames: up to two more passes copy those,
    /// which are few. False also when a commit's own backstop checkpoint was running (SQLite
    /// runs one checkpoint at a time).
    @discardableResult
    public func checkpoint() throws -> Bool {
        for _ in 0..<3 {
            switch try pass() {
            case .complete: return true
            case .busy: return false
            case .partial: continue
            }
        }
        return false
    }

    enum Pass { case complete, partial, busy }

    func pass() throws -> Pass {
        let result: (walFrames: Int, copied: Int)
        do {
            result = try db.checkpoint(.passive)
        } catch {
            if error.code == 5 { return .busy }  // SQLITE_BUSY
            throw error
        }
        return result.copied >= result.walFrames ? .complete : .partial
    }
}
