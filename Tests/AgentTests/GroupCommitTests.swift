import Foundation
import Logging
import Outbox
import Testing
@testable import Agent
import VaktpostCore

/// The daemon's commits: readings' state events wait up to 200 ms for company; an alarm goes
/// at once and takes them along; a stop commits what waits.
@Suite(.serialized) struct GroupCommitTests {
    func daemon(_ dir: String) throws -> HubDaemon {
        try buttonHub(dir, outbox: dir + "/outbox.sqlite", socket: dir + "/ctl.sock")
    }

    func motion(_ on: Bool, _ counter: Int) -> ESP3Telegram {
        ESP3Telegram(ESP3Packet(type: 1, data: [0xA5, 0x00, UInt8(counter & 0xFF), on ? 0xFF : 0x00, 0x08, 0x05, 0x12, 0xA3, 0xF1, 0x00],
                                optional: [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 60, 0x00]))
    }

    var press: ESP3Telegram {
        ESP3Telegram(ESP3Packet(type: 1, data: [0xF6, 0x50, 0x00, 0xAB, 0x00, 0x01, 0x30], optional: [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 60, 0x00]))
    }

    func depth(_ d: HubDaemon) throws -> Int {
        try d.outbox.with { try $0.status().lanes.values.reduce(0) { $0 + $1.depth } }
    }

    @Test func stateEventsWaitForCompanyAndAnAlarmTakesThemAlong() throws {
        try withTemporaryDirectory { dir in
            let d = try daemon(dir)
            try d.start(.rules)
            defer { d.stop(.rules) }
            for i in 0..<21 { d.heardSerial(motion(i % 2 == 1, i), at: d.clock.now(), receiver: "usb300") }  // the first only sets the state
            #expect(try depth(d) == 0, "20 state events wait for company")
            d.heardSerial(press, at: d.clock.now(), receiver: "usb300")
            #expect(try depth(d) == 21, "the alarm went at once and took them along")
            for i in 21..<26 { d.heardSerial(motion(i % 2 == 1, i), at: d.clock.now(), receiver: "usb300") }
            #expect(try depth(d) == 21)
            Thread.sleep(forTimeInterval: 0.6)
            #expect(try depth(d) == 26, "the rules loop commits them within 200 ms")
        }
    }

    @Test func aStopCommitsWhatWaits() throws {
        try withTemporaryDirectory { dir in
            let d = try daemon(dir)
            try d.start(.rules)
            for i in 0..<6 { d.heardSerial(motion(i % 2 == 1, i), at: d.clock.now(), receiver: "usb300") }
            d.stop(.rules)
            let again = try daemon(dir)
            #expect(try depth(again) == 5)
        }
    }
}
