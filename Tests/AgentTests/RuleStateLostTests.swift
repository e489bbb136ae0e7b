import Foundation
import Logging
@testable import Outbox
import SQLiteStore
import Testing
@testable import Agent
import VaktpostCore
import VaktpostPosix

/// The rule engine's state is committed in the outbox with the events it produced. If a start
/// cannot read it (damaged on the card, written by a newer agent), the rules start afresh: a
/// timer that was running (not back in bed within 30 minutes) is not. That must be said.
@Suite(.serialized) struct RuleStateLostTests {
    var press: ESP3Telegram {
        ESP3Telegram(ESP3Packet(type: 1, data: [0xF6, 0x50, 0x00, 0xAB, 0x00, 0x01, 0x30], optional: [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 60, 0x00]))
    }

    func recovered(_ d: HubDaemon) throws -> [JSONValue] {
        try d.outbox.with { try $0.fetch(where: "type = 'outbox.recovered'", [], limit: 10) }.map { try JSONValue.parse(bytes: $0.payload) }
    }

    @Test(arguments: ["{\"version\": 99}", "{\"version\": 1, \"sensors\": {\"hall\": {\"lastHeard\": \"x\"}}}", "{\"vers"])
    func aRuleStateAStartCannotReadIsRaisedAsOutboxRecovered(saved: String) throws {
        try withTemporaryDirectory { dir in
            let outbox = dir + "/outbox.sqlite"
            let d = try buttonHub(dir, outbox: outbox, socket: dir + "/ctl.sock")
            d.heardSerial(press, at: d.clock.now(), receiver: "usb300")
            #expect(try d.outbox.with { try $0.loadRuleState() } != nil)
            d.stop(.rules)  // which saves the rule state: damaged after it, on the card
            try Connection(path: outbox).prepare("UPDATE rule_state SET state = ?").bind(.text(saved)).run()

            let again = try buttonHub(dir, outbox: outbox, socket: dir + "/ctl.sock")
            let raised = try recovered(again)
            #expect(raised.count == 1)
            #expect(raised.first?["data"]?["ruleState"]?.stringValue?.hasPrefix("unreadable") == true)
            #expect(raised.first?["data"]?["reason"]?.stringValue?.isEmpty == false)
            // The rules run on from a fresh state, which the next reading commits.
            again.heardSerial(press, at: again.clock.now(), receiver: "usb300")
            #expect(try again.outbox.with { try $0.loadRuleState() } != nil)
        }
    }

    @Test func aRuleStateReadBackRaisesNothing() throws {
        try withTemporaryDirectory { dir in
            let outbox = dir + "/outbox.sqlite"
            let d = try buttonHub(dir, outbox: outbox, socket: dir + "/ctl.sock")
            d.heardSerial(press, at: d.clock.now(), receiver: "usb300")
            d.stop(.rules)
            #expect(try recovered(try buttonHub(dir, outbox: outbox, socket: dir + "/ctl.sock")).isEmpty)
        }
    }
}

/// An alarm whose stored bytes the card damaged is made again from the outbox's columns (type,
/// sensor, time), which the damage did not reach (`HubDaemon.remakeDamagedAlarm`).
@Test func anAlarmTheCardDamagedIsMadeAgainAtItsOwnTime() throws {
    try withTemporaryDirectory { dir in
        let d = try buttonHub(dir, outbox: dir + "/outbox.sqlite", socket: dir + "/ctl.sock")
        defer { d.stop(.rules) }
        let pressed = d.clock.now() - .seconds(60)
        var rng = SystemRandomNumberGenerator()
        let original = EventID.v7(unixMilliseconds: pressed.millisecondsSinceEpoch, using: &rng)
        let damaged = StoredEvent(seq: 7, eventID: original, lane: .alarm, eventClass: .alarm, type: "button.pressed", priority: 1,
                                  sensor: "button", occurredAt: pressed, payload: Array("{\"eventId\": \"01".utf8))
        let id = try #require(d.remakeDamagedAlarm(damaged))
        let stored = try d.outbox.with { try $0.fetch(where: "event_id = ?", [.text(id.description)], limit: 1) }
        let json = try JSONValue.parse(bytes: try #require(stored.first).payload)
        #expect(json["type"]?.stringValue == "button.pressed")
        #expect(json["state"]?.stringValue == "active")
        #expect(json["deviceId"]?.stringValue == "button")
        let room = json["location"]?["code"]?.stringValue
        #expect(room != nil, "the sensor's room, from its config")
        #expect(json["data"]?["remadeFrom"]?.stringValue == original.description)
        #expect(stored.first?.occurredAt == pressed, "when it was pressed, not when it was made again")

        var unknown = damaged
        unknown.type = "bu\u{7F}ton.pressed"  // the type column damaged too: nothing to make
        #expect(d.remakeDamagedAlarm(unknown) == nil)
    }
}

/// A remade alarm the rules still have open takes the damaged one's place in its story: its
/// correlation is the damaged id, which the rule's `cleared` carries, so the platform can end it.
@Test func anAlarmTheRulesHaveOpenIsMadeAgainWithItsRuleAndEndedByItsClearing() throws {
    try withTemporaryDirectory { dir in
        try FileManager.default.createDirectory(atPath: dir + "/run", withIntermediateDirectories: true)
        let now = WallTime(nanosecondsSinceEpoch: SystemClock.now())
        let hours = SystemClock.now() / 3_600_000_000_000
        let window = String(format: "%02d:00-%02d:00", Int((hours + 20) % 24), Int((hours + 2) % 24))
        let config = try writeBedHubConfig(dir, window: window)
        let d = try HubDaemon(options: RunOptions(configPath: config, socketPath: dir + "/run/ctl.sock", auditLog: dir + "/audit.log"),
                              logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        defer { d.stop(.rules) }
        d.heardSerial(bedPad(true), at: now - .seconds(3 * 3600), receiver: "usb300")
        d.heardSerial(bedPad(false), at: now - .seconds(2 * 3600), receiver: "usb300")
        d.step()
        var original = try #require(try d.outbox.with { try $0.fetch(where: "type = 'bed.not_returned'", [], limit: 1) }.first)
        original.payload = Array("{\"eventId\": \"01".utf8)

        let id = try #require(d.remakeDamagedAlarm(original))
        let remade = try JSONValue.parse(bytes: try #require(try d.outbox.with { try $0.fetch(where: "event_id = ?", [.text(id.description)], limit: 1) }.first).payload)
        #expect(remade["correlationId"]?.stringValue == original.eventID.description)
        #expect(remade["rule"]?["id"]?.stringValue == "night-bed")

        d.heardSerial(bedPad(true), at: now, receiver: "usb300")
        let cleared = try d.outbox.with { try $0.fetch(where: "type = 'bed.not_returned' AND event_id <> ?", [.text(id.description)], limit: 10) }
            .map { try JSONValue.parse(bytes: $0.payload) }.filter { $0["state"]?.stringValue == "cleared" }
        #expect(cleared.count == 1)
        #expect(cleared.first?["correlationId"] == remade["correlationId"], "the clearing ends the remade alarm")
    }
}
