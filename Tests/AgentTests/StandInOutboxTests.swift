import Foundation
import Logging
@testable import Outbox
import Testing
import TestSupport
@testable import Agent
import VaktpostCore

/// An outbox that cannot be opened at start (a card the kernel remounted read-only, a state
/// directory missing) must not keep the agent from running: it runs from a stand-in beside the
/// control socket, says so, and the next start with the outbox back takes the stand-in in.
@Suite(.serialized) struct StandInOutboxTests {
    func daemon(_ dir: String, outbox: String) throws -> HubDaemon {
        try buttonHub(dir, outbox: outbox, socket: dir + "/run/ctl.sock")
    }

    var press: ESP3Telegram {
        ESP3Telegram(ESP3Packet(type: 1, data: [0xF6, 0x50, 0x00, 0xAB, 0x00, 0x01, 0x30], optional: [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 60, 0x00]))
    }

    func queued(_ d: HubDaemon) throws -> [(seq: UInt64, type: String)] {
        try d.outbox.with { try $0.fetch(where: "1", [], limit: 100).map { ($0.seq, $0.type) } }.sorted { $0.seq < $1.seq }
    }

    /// The card dies under the running agent, and it is stopped (a technician's restart, a
    /// remote command) before the card takes writes again: the alarm held in memory goes to the
    /// stand-in, the next start still without the card runs from it, and the start with the card
    /// back takes it in.
    @Test func whatMemoryHoldsWhenTheAgentStopsIsNotLost() throws {
        try withTemporaryDirectory { dir in
            let fm = FileManager.default
            try fm.createDirectory(atPath: dir + "/run", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: dir + "/state", withIntermediateDirectories: true)
            let outbox = dir + "/state/outbox.sqlite"
            let d = try daemon(dir, outbox: outbox)
            d.heardSerial(press, at: d.clock.now(), receiver: "usb300")
            let card = try DeadCard(outbox)
            defer { card.revive() }
            d.heardSerial(press, at: d.clock.now() + .seconds(5), receiver: "usb300")
            let held = try d.outbox.with { o in o.memory.map(\.eventID) }
            #expect(held.count == 2, "the second press and outbox.write_failed wait in memory")
            #expect(d.statusLine().contains("outbox unreadable (IN MEMORY: the disk refuses writes)"), "in systemctl status")
            d.stop(.rules)
            card.revive()

            try fm.moveItem(atPath: dir + "/state", toPath: dir + "/state.dead")  // still no card
            let again = try daemon(dir, outbox: outbox)
            #expect(try again.outbox.with { $0.path } == dir + "/run/outbox-stand-in.sqlite")
            let during = try again.outbox.with { try $0.fetch(where: "1", [], limit: 100).map(\.eventID) }
            #expect(Set(during) == Set(held), "what memory held, and no outbox.write_failed raised again")
            #expect(try again.outbox.with { try $0.loadRuleState() } != nil, "the rules go on where they were")

            try fm.moveItem(atPath: dir + "/state.dead", toPath: dir + "/state")
            let back = try daemon(dir, outbox: outbox)
            let after = try queued(back).map(\.type)
            #expect(after.filter { $0 == "button.pressed" }.count == 2)
            #expect(after.filter { $0 == "outbox.write_failed" }.count == 2, "raised, then cleared")
            #expect(!fm.fileExists(atPath: dir + "/run/outbox-stand-in.sqlite"))
        }
    }

    @Test func withoutItsOutboxTheAgentRunsFromAStandInAndHandsItOverLater() throws {
        try withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/run", withIntermediateDirectories: true)
            let state = dir + "/state"  // not there yet: the outbox cannot be opened
            let d = try daemon(dir, outbox: state + "/outbox.sqlite")
            #expect(try d.outbox.with { $0.path } == dir + "/run/outbox-stand-in.sqlite")
            #expect(try d.outbox.with { try $0.status().writeFailure }?.contains(state + "/outbox.sqlite") == true)
            try d.start(.rules)
            d.heardSerial(press, at: d.clock.now(), receiver: "usb300")
            d.stop(.rules)
            let during = try queued(d).map(\.type)
            #expect(during.contains("outbox.write_failed") && during.contains("button.pressed"))

            // A restart without the disk goes on with the same stand-in, raising nothing new.
            let again = try daemon(dir, outbox: state + "/outbox.sqlite")
            #expect(try queued(again).map(\.type) == during)

            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            let back = try daemon(dir, outbox: state + "/outbox.sqlite")
            #expect(try back.outbox.with { $0.path } == state + "/outbox.sqlite")
            let after = try queued(back)
            #expect(after.map(\.type) == during + ["outbox.write_failed"], "everything taken in, and outbox.write_failed cleared")
            #expect(after.map(\.seq) == after.map(\.seq).sorted() && Set(after.map(\.seq)).count == after.count)
            #expect(!FileManager.default.fileExists(atPath: dir + "/run/outbox-stand-in.sqlite"))
            #expect(try back.outbox.with { try $0.status().writeFailure } == nil)
        }
    }
}
