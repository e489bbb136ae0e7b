import Testing
import SQLiteStore

@Test func sqliteIsLinkedAndThreadSafe() {
    let version = SQLiteLibrary.version
    #expect(version.hasPrefix("3."), "\(version)")
    #expect(SQLiteLibrary.isThreadSafe)
}
