import SQLiteStore
import Synchronization
import VaktpostCore

/// What the reference receiver keeps, in SQLite: every event once per (hub, eventId), the alarms'
/// handling status, the latest heartbeat per hub, Idempotency-Key answers, configs and commands.
/// One connection behind a lock: the receiver answers many hubs at once, SQLite writes one at a time.
public final class ReceiverStore: @unchecked Sendable {
    private let lock = Mutex(())
    private let db: Connection

    public init(path: String) throws {
        db = try Connection(path: path)
        try db.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL")
        var m = Migrator()
        m.add(version: 1, """
            CREATE TABLE hubs(hub_id TEXT PRIMARY KEY, last_heartbeat_at INTEGER, last_heartbeat TEXT,
                heartbeats INTEGER NOT NULL DEFAULT 0, heartbeat_sec INTEGER, config TEXT, config_etag TEXT,
                command_seq INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE events(arrival INTEGER PRIMARY KEY AUTOINCREMENT, hub_id TEXT NOT NULL, event_id TEXT NOT NULL,
                seq INTEGER NOT NULL, class TEXT NOT NULL, type TEXT NOT NULL, state TEXT NOT NULL, occurred_at TEXT NOT NULL,
                lane TEXT NOT NULL, received_at INTEGER NOT NULL, body TEXT NOT NULL, UNIQUE(hub_id, event_id));
            CREATE TABLE alarms(hub_id TEXT NOT NULL, event_id TEXT NOT NULL, received_at INTEGER NOT NULL,
                presented_at INTEGER, acknowledged_at INTEGER, closed_at INTEGER, PRIMARY KEY(hub_id, event_id));
            CREATE TABLE idempotency(hub_id TEXT NOT NULL, key TEXT NOT NULL, request BLOB NOT NULL, status INTEGER NOT NULL,
                response BLOB NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY(hub_id, key));
            CREATE TABLE commands(hub_id TEXT NOT NULL, command_seq INTEGER NOT NULL, command_id TEXT NOT NULL, kind TEXT NOT NULL,
                args TEXT NOT NULL, created_at INTEGER NOT NULL, result_status TEXT, result_detail TEXT, result_at INTEGER,
                PRIMARY KEY(hub_id, command_id));
            CREATE TABLE counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            """)
        // Keys expire (Platform.Options.idempotencyRetention): found by age.
        m.add(version: 2, "CREATE INDEX idempotency_age ON idempotency(created_at);")
        try m.migrate(db)
    }

    func with<T>(_ body: (Connection) throws -> T) throws -> T {
        try lock.withLock { _ in try body(db) }
    }
}

/// An alarm's handling at the response centre (docs/openapi.yaml AlarmStatus).
public struct AlarmRecord: Sendable, Equatable {
    public var eventID: String
    public var receivedAt: WallTime
    public var presentedAt: WallTime?
    public var acknowledgedAt: WallTime?
    public var closedAt: WallTime?

    public var status: String {
        closedAt != nil ? "closed" : acknowledgedAt != nil ? "acknowledged" : presentedAt != nil ? "presented" : "received"
    }

    func json(offset: Int = 0) -> JSONValue {
        func stamp(_ t: WallTime?) -> JSONValue? { t.map { .string(RFC3339.format($0, utcOffsetSeconds: offset, fractionDigits: 3)) } }
        return .object(dropping: [
            ("eventId", .string(eventID)), ("status", .string(status)), ("receivedAt", stamp(receivedAt)),
            ("presentedAt", stamp(presentedAt)), ("acknowledgedAt", stamp(acknowledgedAt)), ("closedAt", stamp(closedAt)),
        ])
    }
}
