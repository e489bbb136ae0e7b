internal import CSQLite

/// A failed SQLite call: primary and extended result code, SQLite's message, and the SQL that
/// was running, so a log line says what failed without a debugger.
public struct SQLiteError: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: Int32
    public var extendedCode: Int32
    public var message: String
    public var sql: String?

    public init(code: Int32, extendedCode: Int32, message: String, sql: String? = nil) {
        self.code = code
        self.extendedCode = extendedCode
        self.message = message
        self.sql = sql
    }

    /// The disk (or the size cap) is full: the write can be retried once space returns.
    /// (The unix VFS reports ENOSPC from write(2) as SQLITE_FULL too.)
    public var isFull: Bool { code == SQLITE_FULL }
    /// The file is not a database or is damaged.
    public var isCorrupt: Bool { code == SQLITE_CORRUPT || code == SQLITE_NOTADB }
    /// The storage failed, not the statement: the disk is full, failing (an I/O error, a file
    /// system remounted read-only), the file is damaged, or another process holds its lock. The
    /// same write may succeed later; a statement's own error (a constraint, bad SQL) never will.
    public var isStorageFailure: Bool {
        isFull || isCorrupt || [SQLITE_IOERR, SQLITE_READONLY, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_CANTOPEN, SQLITE_PROTOCOL, SQLITE_NOMEM].contains(code)
    }

    public var description: String {
        var s = "SQLite error \(code) (extended \(extendedCode)): \(message)"
        if let sql { s += " - while executing `\(sql)`" }
        return s
    }
}
