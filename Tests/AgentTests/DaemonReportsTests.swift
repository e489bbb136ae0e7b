import Testing
@testable import Agent
import VaktpostCore

struct DaemonReportsTests {
    func status(outbox: [(String, JSONValue)]) -> JSONValue {
        .object([("hubId", .string("hub-0001")), ("version", .string("0.1.0")), ("uptimeS", .int(90)), ("outbox", .object(outbox))])
    }

    /// `vaktpost status` says, on the outbox's line, that the disk refuses writes, and why.
    @Test func aDiskThatRefusesWritesShowsOnTheOutboxLine() {
        let fine = DaemonReports.status(status(outbox: [("alarmLane", .int(0)), ("inMemory", .int(0))]))
        #expect(!fine.contains("CANNOT WRITE"))
        let failing = DaemonReports.status(status(outbox: [("alarmLane", .int(0)), ("inMemory", .int(3)),
                                                             ("writeFailure", .string("disk I/O error, SQLite code 778"))]))
        #expect(failing.contains("CANNOT WRITE (disk I/O error, SQLite code 778): 3 events held in memory"))
    }
}
