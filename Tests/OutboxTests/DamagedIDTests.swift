import Foundation
import SQLiteStore
import Testing
@testable import Outbox
import VaktpostCore

/// A row whose `event_id` the card damaged: the database still passes quick_check, and the
/// agent must neither crash on the row (it would at every start) nor leave it stuck in the queue.
@Suite struct DamagedIDTests {
    /// Writes over an id the way a failing card would, behind the outbox's back.
    func damage(_ path: String, table: String = "events", seq: UInt64, payloadToo: Bool = false) throws {
        let c = try Connection(path: path)
        try c.prepare("UPDATE \(table) SET event_id = ? WHERE seq = ?").bind(.text("0190f3c1-7b2e-7a44-9d0e\u{1}5c1f2a9b8e0\(seq % 10)"), .integer(Int64(seq))).run()
        #expect(c.changes == 1)
        if payloadToo {
            try c.prepare("UPDATE \(table) SET payload = ? WHERE seq = ?").bind(.blob([0x7B, 0x22, 0x65, 0xFF]), .integer(Int64(seq))).run()
        }
    }

    func undamaged(_ path: String) throws -> Int64 {
        let c = try Connection(path: path)
        var bad: Int64 = 0
        for table in ["events", "followed_alarms", "dead_letters"] {
            bad += try c.integer("SELECT COUNT(*) FROM \(table) WHERE event_id NOT GLOB '\(Outbox.canonicalIDPattern)'") ?? 0
        }
        return bad
    }

    func recoveredEvents(_ outbox: Outbox) throws -> [JSONValue] {
        try outbox.fetch(where: "type = 'outbox.recovered'", [], limit: 10).map { try JSONValue.parse(bytes: $0.payload) }
    }

    @Test func anAlarmWhoseIdWasDamagedGoesOutUnderItsOwnIdAndLeavesWhenDelivered() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/outbox.sqlite"
            let m = EventMaker()
            let outbox = try m.open(path)
            let alarms = (0..<3).map { _ in m.make(.bedNotReturned) }
            let seqs = try outbox.append(alarms)
            try damage(path, seq: seqs[0])
            // Read from the event's own bytes: the id the platform answers for.
            let queued = try outbox.queuedAlarms(skipping: [], limit: 10)
            #expect(queued.map(\.eventID) == alarms.map(\.eventID))
            let batch = OutboxBatch.alarm(queued[0])
            try outbox.settle(batch, outcomes: allDelivered(batch))
            #expect(try outbox.fetch(where: "seq = ?", [.integer(Int64(seqs[0]))], limit: 1).isEmpty)
            #expect(try undamaged(path) == 0)
            let raised = try recoveredEvents(outbox)
            #expect(raised.count == 1)
            #expect(raised.first?["data"]?["repaired"] == .int(1))
            #expect(raised.first?["data"]?["idsFromEventBytes"] == .int(1))
            #expect(raised.first?["data"]?["seqs"] == .array([.int(Int64(seqs[0]))]))
            // The other two alarms, then outbox.recovered; nothing sent twice.
            let rest = try outbox.queuedAlarms(skipping: [], limit: 10)
            #expect(rest.map(\.eventID).prefix(2) == alarms.suffix(2).map(\.eventID)[...])
            #expect(rest.map(\.type).last == "outbox.recovered")
        }
    }

    @Test func anEventWhoseIdAndBytesWereDamagedGetsANewIdItKeepsUntilDelivered() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/outbox.sqlite"
            let m = EventMaker()
            let outbox = try m.open(path)
            let states = (0..<4).map { _ in m.make(.bedState, .update) }
            let seqs = try outbox.append(states)
            try damage(path, seq: seqs[1], payloadToo: true)
            let batch = try #require(try outbox.nextBatch(maxCount: 10, maxBytes: 1 << 20, body: noBody))
            let made = batch.events[1].eventID
            #expect(made != states[1].eventID)
            #expect(made.version == 7)
            #expect(batch.events.map(\.eventID) == [states[0].eventID, made, states[2].eventID, states[3].eventID])
            // The same id at the next read (the batch is sent again unchanged).
            #expect(try outbox.fetch(where: "seq = ?", [.integer(Int64(seqs[1]))], limit: 1).map(\.eventID) == [made])
            try outbox.settle(batch, outcomes: allDelivered(batch))
            #expect(try outbox.fetch(where: "lane = 1", [], limit: 10).isEmpty)
            #expect(try undamaged(path) == 0)
            #expect(try recoveredEvents(outbox).first?["data"]?["idsFromEventBytes"] == .int(0))
        }
    }

    @Test func anUnansweredEventWhoseIdWasDamagedIsQueuedAgain() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/outbox.sqlite"
            let m = EventMaker()
            let outbox = try m.open(path)
            let seqs = try outbox.append((0..<2).map { _ in m.make(.bedState, .update) })
            let batch = try #require(try outbox.nextBatch(maxCount: 10, maxBytes: 1 << 20, body: noBody))
            // Damaged while the batch was on its way, after every read of it.
            try damage(path, seq: seqs[0])
            // The platform answered for the second only: the first goes back to the queue.
            try outbox.settle(batch, outcomes: [batch.events[1].eventID: .delivered])
            let again = try #require(try outbox.nextBatch(maxCount: 10, maxBytes: 1 << 20, body: noBody))
            #expect(again.events.map(\.seq) == [seqs[0]])
            try outbox.settle(again, outcomes: allDelivered(again))
            #expect(try outbox.fetch(where: "1", [], limit: 10).map(\.type) == ["outbox.recovered"])
        }
    }

    @Test func aDeliveredEventWhoseIdWasDamagedOnItsWayLeaves() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/outbox.sqlite"
            let m = EventMaker()
            let outbox = try m.open(path)
            try outbox.append((0..<2).map { _ in m.make(.bedState, .update) })
            let batch = try #require(try outbox.nextBatch(maxCount: 10, maxBytes: 1 << 20, body: noBody))
            try damage(path, seq: batch.events[0].seq)
            try outbox.settle(batch, outcomes: allDelivered(batch))
            #expect(try outbox.fetch(where: "1", [], limit: 10).isEmpty)
            #expect(try outbox.status().lanes[.bulk]?.depth == 0)
        }
    }

    @Test func aFollowedAlarmWhoseIdWasDamagedEndsWhenAcknowledged() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/outbox.sqlite"
            let m = EventMaker()
            let outbox = try m.open(path)
            let alarm = m.make(.bedNotReturned)
            let seq = try outbox.append([alarm])[0]
            let batch = try #require(try outbox.nextAlarm())
            try outbox.settle(batch, outcomes: [alarm.eventID: .deliveredFollowing(location: "/x")])
            try damage(path, table: "followed_alarms", seq: seq)
            #expect(try outbox.followedAlarms().map(\.event.eventID) == [alarm.eventID])
            try outbox.follow(alarm.eventID, .ended)
            #expect(try outbox.followedAlarms().isEmpty)
        }
    }

    @Test func damagedIdsInEveryTableAreReadAroundAfterARestartAndMendedAtTheNextWrite() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/outbox.sqlite"
            let m = EventMaker()
            let alarms = (0..<3).map { _ in m.make(.bedNotReturned) }
            var seqs: [UInt64] = []
            do {
                let outbox = try m.open(path)
                seqs = try outbox.append(alarms)
                try outbox.settle(try outbox.nextAlarm()!, outcomes: [alarms[0].eventID: .deliveredFollowing(location: "/x")])
                try outbox.settle(try outbox.nextAlarm()!, outcomes: [alarms[1].eventID: .rejected(reason: "schema")])
                try outbox.close()
            }
            try damage(path, table: "followed_alarms", seq: seqs[0])
            try damage(path, table: "dead_letters", seq: seqs[1])
            try damage(path, seq: seqs[2], payloadToo: true)
            #expect(try undamaged(path) == 3)
            let reopened = try m.open(path)
            #expect(reopened.recoveredFrom == nil)  // not moved aside: the file itself is sound
            // Read around: the followed alarm and the dead letter by the ids in their bytes.
            #expect(try reopened.followedAlarms().map(\.event.eventID) == [alarms[0].eventID])
            #expect(try reopened.deadLetters().map(\.eventID) == [alarms[1].eventID])
            #expect(try OutboxFile.deadLetters(path: path).map(\.eventID) == [alarms[1].eventID])
            let third = try #require(try reopened.nextAlarm())
            #expect(third.events.map(\.seq) == [seqs[2]])
            #expect(try undamaged(path) == 3)  // reads write nothing
            try reopened.settle(third, outcomes: allDelivered(third))
            #expect(try undamaged(path) == 1)  // the dead letter was read by its own query, not as an event
            try reopened.retryDeadLetters()
            let retried = try #require(try reopened.nextAlarm())
            #expect(retried.events.map(\.eventID) == [alarms[1].eventID])
            try reopened.follow(alarms[0].eventID, .ended)
            #expect(try undamaged(path) == 0)
            #expect(try reopened.followedAlarms().isEmpty)
            let raised = try recoveredEvents(reopened)
            #expect(raised.map { $0["data"]?["repaired"] } == [.int(2), .int(1)])
            #expect(raised.map { $0["data"]?["idsFromEventBytes"] } == [.int(1), .int(1)])
        }
    }

    @Test func aDamagedRowWhoseBytesNameAnotherRowsIdGetsANewOne() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/outbox.sqlite"
            let m = EventMaker()
            let alarms = (0..<2).map { _ in m.make(.bedNotReturned) }
            var seqs: [UInt64] = []
            do { seqs = try m.open(path).append(alarms) }
            try damage(path, seq: seqs[0])
            let c = try Connection(path: path)
            try c.prepare("UPDATE events SET payload = (SELECT payload FROM events WHERE seq = ?) WHERE seq = ?")
                .bind(.integer(Int64(seqs[1])), .integer(Int64(seqs[0]))).run()
            let reopened = try m.open(path)
            _ = try reopened.queuedAlarms(skipping: [], limit: 10)
            reopened.mendDamagedIDsIfSeen()
            #expect(try undamaged(path) == 0)
            let ids = try reopened.fetch(where: "seq IN (?, ?)", seqs.map { .integer(Int64($0)) }, limit: 10).map(\.eventID)
            #expect(ids.count == 2)
            #expect(Set(ids).count == 2)
            #expect(ids.contains(alarms[1].eventID))
        }
    }
}
