internal import CSQLite

/// Facts about the SQLite library the agent is linked against, for `vaktpost version` and support.
public enum SQLiteLibrary {
    /// `3.40.1`
    public static var version: String { String(cString: sqlite3_libversion()) }

    /// Whether the library was built thread-safe; the outbox relies on serialized access either way.
    public static var isThreadSafe: Bool { sqlite3_threadsafe() != 0 }
}
