import Foundation
import Logging
import Synchronization
import Testing
import TestSupport
import VaktpostPosix
@testable import Agent
import VaktpostCore

/// The wall clock jumping an hour forward and back under the running daemon (the harness cannot
/// step the real clock: that needs CAP_SYS_TIME). Unsynchronised, the agent keeps its own time:
/// a pending 30-minute timer neither fires early nor late, and each step is reported once as
/// clock.stepped. Synchronised, the step is followed and reported as such.
@Suite(.serialized) struct ClockStepTests {
    final class Wall: Sendable {
        let synced: Bool
        init(synced: Bool) { self.synced = synced }
        // Real time passes as well; steps add to it.
        let offset = Mutex(Duration.zero)
        func now() -> WallTime { WallTime(nanosecondsSinceEpoch: Int64(SystemClock.now())) + offset.withLock { $0 } }
        func step(_ d: Duration) { offset.withLock { $0 += d } }
    }

    func daemon(_ dir: String, _ wall: Wall) throws -> HubDaemon {
        var options = RunOptions(configPath: try writeBedHubConfig(dir), socketPath: dir + "/ctl.sock", auditLog: dir + "/audit.log")
        options.wallClock = { wall.now() }
        options.wallClockSynced = { wall.synced }
        return try HubDaemon(options: options, logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
    }

    func bed(_ occupied: Bool) -> ESP3Telegram { bedPad(occupied) }

    func events(_ d: HubDaemon) -> [JSONValue] { d.core.withLock { $0.recent.map(\.json) } }

    func steps(_ d: HubDaemon) -> [(Int64, Bool)] {
        events(d).filter { $0["type"]?.stringValue == "clock.stepped" }.compactMap { e in
            guard let s = e["data"]?["stepS"]?.intValue, case .bool(let f)? = e["data"]?["followed"] else { return nil }
            return (s, f)
        }
    }

    @Test func unsynchronisedStepsAreReportedAndTimersKeepTheirTime() throws {
        try withTemporaryDirectory { dir in
            let wall = Wall(synced: false)
            let d = try daemon(dir, wall)
            try d.start(.rules)
            defer { d.stop(.rules) }
            d.heardSerial(bed(true), at: d.clock.now(), receiver: "usb300")
            Thread.sleep(forTimeInterval: 0.1)
            d.heardSerial(bed(false), at: d.clock.now(), receiver: "usb300")  // out of bed: 30 minutes start
            let before = d.clock.now()
            wall.step(.seconds(3600))
            #expect(waitUntil(5) { steps(d).count == 1 })
            #expect(steps(d).first.map { $0.0 >= 3599 && $0.0 <= 3601 && !$0.1 } == true, "\(steps(d))")
            #expect(d.clock.now() - before < .seconds(10), "the agent's time did not jump")
            #expect(!events(d).contains { $0["type"]?.stringValue == "bed.not_returned" }, "the 30-minute timer did not fire early")
            wall.step(.seconds(-3600))
            #expect(waitUntil(5) { steps(d).count == 2 })
            #expect(steps(d).last.map { $0.0 <= -3599 && $0.0 >= -3601 && !$0.1 } == true, "\(steps(d))")
            Thread.sleep(forTimeInterval: 1.5)
            #expect(steps(d).count == 2, "each step reported once")
            #expect(!events(d).contains { $0["type"]?.stringValue == "bed.not_returned" })
        }
    }

    @Test func aSynchronisedClockSetOnPurposeIsFollowedAndReported() throws {
        try withTemporaryDirectory { dir in
            let wall = Wall(synced: true)
            let d = try daemon(dir, wall)
            try d.start(.rules)
            defer { d.stop(.rules) }
            wall.step(.seconds(3600))
            #expect(waitUntil(5) { steps(d).count == 1 })
            #expect(steps(d).first?.1 == true)
            #expect(abs((d.clock.now() - wall.now()).nanoseconds) < 2_000_000_000, "the agent's time follows")
        }
    }
}
