internal import CSQLite

/// One SQLite connection. Owns the `sqlite3*` handle and closes it in `deinit`.
///
/// Not `Sendable`: a connection is used from one thread at a time; the owner (the outbox)
/// serialises access.
public final class Connection {
    let handle: OpaquePointer
    public let path: String
    private var cache: [String: Statement] = [:]

    public struct OpenMode: Sendable {
        let flags: Int32
        public static let readWrite = OpenMode(flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        /// For the CLI reading while the daemon writes; never creates the file.
        public static let readOnly = OpenMode(flags: SQLITE_OPEN_READONLY)
        /// Read-only, as a file nothing writes any more (SQLite's `immutable`): readable on a
        /// read-only file system where a WAL database's -shm cannot be made. Uncheckpointed
        /// WAL content is not seen.
        public static let immutable = OpenMode(flags: SQLITE_OPEN_READONLY | SQLITE_OPEN_URI)
    }

    public init(path: String, mode: OpenMode = .readWrite) throws(SQLiteError) {
        var db: OpaquePointer? = nil
        var name = path
        if mode.flags & SQLITE_OPEN_URI != 0 {
            // A URI filename: the characters a URI gives a meaning to are escaped.
            name = "file:" + path.map { "%?#".contains($0) ? "%\(String(Int($0.asciiValue!), radix: 16))" : String($0) }.joined() + "?immutable=1"
        }
        let code = sqlite3_open_v2(name, &db, mode.flags | SQLITE_OPEN_NOMUTEX, nil)
        guard code == SQLITE_OK, let db else {
            // "Whether or not an error occurs when it is opened, resources associated with the
            // database connection handle should be released by passing it to sqlite3_close()."
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(db)
            throw SQLiteError(code: code & 0xFF, extendedCode: code, message: "\(message): \(path)")
        }
        handle = db
        self.path = path
        sqlite3_extended_result_codes(db, 1)
        // Readers and the writer wait for each other briefly instead of failing at once.
        sqlite3_busy_timeout(db, 5000)
    }

    /// How long a statement waits for another connection's lock before failing with
    /// SQLITE_BUSY (5 s when opened).
    public func setBusyTimeout(_ wait: Duration) {
        sqlite3_busy_timeout(handle, Int32(clamping: wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000))
    }

    deinit { sqlite3_close_v2(handle) }

    /// What `onCommit(walPages:)` calls, kept alive as long as the connection.
    private final class CommitHook {
        let body: (Int) -> Void
        init(_ body: @escaping (Int) -> Void) { self.body = body }
    }
    private var commitHook: CommitHook?

    /// `body` runs after every commit in WAL mode with the WAL's size in pages
    /// (`sqlite3_wal_hook`). It replaces SQLite's automatic checkpoint: the owner decides when
    /// and where to checkpoint. It runs inside the commit; keep it short.
    public func onCommit(walPages body: @escaping (Int) -> Void) {
        let hook = CommitHook(body)
        commitHook = hook
        sqlite3_wal_hook(handle, { context, _, _, pages in
            Unmanaged<CommitHook>.fromOpaque(context!).takeUnretainedValue().body(Int(pages))
            return SQLITE_OK
        }, Unmanaged.passUnretained(hook).toOpaque())
    }

    public enum CheckpointMode: Sendable {
        /// Copies what it can without waiting for the writer or readers: runs beside them.
        case passive
        /// Waits for the writer, copies everything and truncates the WAL to zero bytes.
        case truncate
    }

    /// `sqlite3_wal_checkpoint_v2`: the WAL's size in frames and how many of them are now in
    /// the database file (equal: a complete checkpoint, so the next write starts the WAL over).
    @discardableResult
    public func checkpoint(_ mode: CheckpointMode) throws(SQLiteError) -> (walFrames: Int, copied: Int) {
        var log: Int32 = 0, copied: Int32 = 0
        let code = sqlite3_wal_checkpoint_v2(handle, nil, mode == .passive ? SQLITE_CHECKPOINT_PASSIVE : SQLITE_CHECKPOINT_TRUNCATE, &log, &copied)
        guard code == SQLITE_OK else { throw error(code, sql: "checkpoint") }
        return (Int(log), Int(copied))
    }

    func error(_ code: Int32, sql: String?) -> SQLiteError {
        SQLiteError(code: code & 0xFF, extendedCode: sqlite3_extended_errcode(handle), message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }

    /// Runs one or more statements that return no rows.
    public func execute(_ sql: String) throws(SQLiteError) {
        let code = sqlite3_exec(handle, sql, nil, nil, nil)
        guard code == SQLITE_OK else { throw error(code, sql: sql) }
    }

    /// A statement prepared once per connection and reused: for the statements on the hot path.
    public func cached(_ sql: String) throws(SQLiteError) -> Statement {
        if let s = cache[sql] { return s }
        let s = try prepare(sql)
        cache[sql] = s
        return s
    }

    public func prepare(_ sql: String) throws(SQLiteError) -> Statement {
        var stmt: OpaquePointer? = nil
        let code = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard code == SQLITE_OK, let stmt else { throw error(code, sql: sql) }
        return Statement(connection: self, handle: stmt, sql: sql)
    }

    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws.
    /// `BEGIN IMMEDIATE` takes the write lock up front, so a busy database fails here, not halfway.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            // After some errors (SQLITE_FULL among them) SQLite has already rolled back.
            if sqlite3_get_autocommit(handle) == 0 { try? execute("ROLLBACK") }
            throw error
        }
    }

    /// The first column of the first row of a query, as an integer.
    public func integer(_ sql: String) throws(SQLiteError) -> Int64? {
        let s = try prepare(sql)
        guard try s.step() else { return nil }
        return s.isNull(0) ? nil : s.int64(0)
    }

    public func text(_ sql: String) throws(SQLiteError) -> String? {
        let s = try prepare(sql)
        guard try s.step() else { return nil }
        return s.text(0)
    }

    public var changes: Int { Int(sqlite3_changes(handle)) }
}

@available(*, unavailable)
extension Connection: Sendable {}

/// A prepared statement. Finalised in `deinit`.
public final class Statement {
    /// Unowned: the connection's cache holds its statements, and a statement never outlives its connection.
    unowned let connection: Connection
    let handle: OpaquePointer
    public let sql: String

    init(connection: Connection, handle: OpaquePointer, sql: String) {
        self.connection = connection
        self.handle = handle
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    /// Binds values to `?` placeholders in order, after clearing the previous run.
    @discardableResult
    public func bind(_ values: SQLiteValue...) throws(SQLiteError) -> Statement {
        try bind(values)
    }

    @discardableResult
    public func bind(_ values: [SQLiteValue]) throws(SQLiteError) -> Statement {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        for (i, value) in values.enumerated() {
            let index = Int32(i + 1)
            let code: Int32
            switch value {
            case .null: code = sqlite3_bind_null(handle, index)
            case .integer(let v): code = sqlite3_bind_int64(handle, index, v)
            case .real(let v): code = sqlite3_bind_double(handle, index, v)
            case .text(let v): code = sqlite3_bind_text(handle, index, v, -1, csqlite_transient())
            case .blob(let v): code = v.withUnsafeBytes { sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), csqlite_transient()) }
            }
            guard code == SQLITE_OK else { throw connection.error(code, sql: sql) }
        }
        return self
    }

    /// Steps once: true with a row to read, false when done.
    public func step() throws(SQLiteError) -> Bool {
        switch sqlite3_step(handle) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let code:
            sqlite3_reset(handle)
            throw connection.error(code, sql: sql)
        }
    }

    /// Steps to the end, for statements that return no rows.
    public func run() throws(SQLiteError) {
        while try step() {}
        sqlite3_reset(handle)  // release the read/write lock now, not at the next bind
    }

    /// Ends a query read only part-way, releasing its read lock (a cached statement stays open otherwise).
    public func reset() { sqlite3_reset(handle) }

    public func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
    public func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    public func text(_ column: Int32) -> String? {
        guard let p = sqlite3_column_text(handle, column) else { return nil }
        return String(cString: p)
    }
    public func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let p = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: count))
    }
}

@available(*, unavailable)
extension Statement: Sendable {}

public enum SQLiteValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

/// Schema migrations on `PRAGMA user_version`: each step runs once, in order, in its own transaction.
public struct Migrator {
    public var steps: [(version: Int, sql: String)] = []

    public init() {}

    public mutating func add(version: Int, _ sql: String) { steps.append((version, sql)) }

    /// Brings the database to the newest version; returns the version it was at.
    @discardableResult
    public func migrate(_ db: Connection) throws -> Int {
        let current = Int(try db.integer("PRAGMA user_version") ?? 0)
        if let newest = steps.last?.version, current > newest {
            throw SQLiteError(code: 1, extendedCode: 1, message: "the database is at schema version \(current), newer than this agent understands (\(newest)); install the newer agent again or move the file aside")
        }
        for step in steps where step.version > current {
            try db.transaction {
                try db.execute(step.sql)
                try db.execute("PRAGMA user_version = \(step.version)")
            }
        }
        return current
    }
}
