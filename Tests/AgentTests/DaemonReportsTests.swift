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

    /// A sensor whose packets are refused says so in `status` and fails `check`, with the reason.
    @Test func aRefusedSensorShowsInStatusAndFailsTheCheck() throws {
        let refused: JSONValue = .object([("reason", .string("the MIC does not verify: wrong bthome_key, wrong address, or a forged packet")),
                                          ("count", .int(7)), ("since", .string("2026-12-07T03:10:00+01:00"))])
        let status: JSONValue = .object([("sensors", .array([.object([("id", .string("fall")), ("role", .string("fall")), ("room", .string("bathroom")),
                                                                         ("transport", .string("ble")), ("refused", refused)])]))])
        #expect(DaemonReports.sensors(status).contains("REFUSED x7: the MIC does not verify"))
        let config = try #require(ConfigReader.read("[hub]\nid = \"h\"\n[[sensors]]\nid = \"fall\"\nrole = \"fall\"\nroom = \"bathroom\"\n", scope: .replay).config)
        var checks = Checklist()
        checks.sensorChecks(config, status)
        #expect(checks.text.contains("FAIL"), "\(checks.text)")
        #expect(checks.text.contains("7 packets refused since 2026-12-07T03:10:00+01:00"), "\(checks.text)")
    }
}
