import Foundation
import Testing
@testable import Outbox
import SQLiteStore
import VaktpostCore

/// Alarms the platform received stay in the outbox until an operator takes them.
@Suite struct FollowedAlarmTests {
    @Test func aReceivedAlarmIsFollowedAcrossARestartAndCanGoBackToTheQueue() throws {
        try withTemporaryDirectory { dir in
            let maker = EventMaker()
            let alarm = maker.make(.fallDetected)
            var outbox: Outbox? = try maker.open(dir + "/o.sqlite")
            try outbox!.append([alarm])
            let batch = try #require(try outbox!.nextAlarm())
            try outbox!.settle(batch, outcomes: [alarm.eventID: .deliveredFollowing(location: "/v1/hubs/h/alarms/\(alarm.eventID)")])
            #expect(try outbox!.status().lanes[.alarm]?.depth == 0)
            #expect(try outbox!.status().awaitingAcknowledgement == 1)
            let escalation = maker.make(.alarmUnacknowledged).eventID
            try outbox!.follow(alarm.eventID, .status("presented", escalation))
            try outbox!.close()
            outbox = nil

            let reopened = try maker.open(dir + "/o.sqlite")
            let followed = try reopened.followedAlarms()
            #expect(followed.count == 1)
            #expect(followed.first?.event.eventID == alarm.eventID)
            #expect(followed.first?.status == "presented")
            #expect(followed.first?.escalation == escalation)
            #expect(followed.first?.location == "/v1/hubs/h/alarms/\(alarm.eventID)")

            // The platform lost it: back in the alarm lane, same seq and bytes.
            try reopened.requeueFollowed(alarm.eventID)
            #expect(try reopened.followedAlarms().isEmpty)
            #expect(reopened.rows == Int(try reopened.db.integer("SELECT COUNT(*) FROM events") ?? -1), "counted for the capacity policy")
            #expect(reopened.bytes == (try reopened.db.integer("SELECT SUM(length(payload)) FROM events")))
            let again = try #require(try reopened.nextAlarm())
            #expect(again.events.map(\.eventID) == [alarm.eventID])
            #expect(again.events.first?.payload == batch.events.first?.payload)
            try reopened.settle(again, outcomes: [alarm.eventID: .deliveredFollowing(location: "/x")])
            try reopened.follow(alarm.eventID, .ended)
            #expect(try reopened.status().awaitingAcknowledgement == 0)
        }
    }

    /// The clock correction rewrites queued events and alarm-lane retries in place; a bulk batch
    /// holding a rewritten event is made anew (new id, so a retry under the old key is never a
    /// different body), and one the correction leaves alone keeps its id and bytes.
    @Test func rewritingMakesAChangedBulkBatchAnew() throws {
        try withTemporaryDirectory { dir in
            let maker = EventMaker()
            let outbox = try maker.open(dir + "/o.sqlite")
            let inBatch = maker.make(.bedState, .update)
            let alarm = maker.make(.sensorSilent)
            try outbox.append([inBatch, alarm])
            let bulk = try #require(try outbox.nextBatch(maxCount: 100, maxBytes: 1 << 20, body: noBody))
            let alarmBatch = try #require(try outbox.nextAlarm())
            let queued = maker.make(.bedState, .update)
            try outbox.append([queued])

            #expect(try outbox.rewriteAll { _ in nil } == 0)
            #expect(try outbox.rewriteAll(containing: "no event holds this") { e in (Array("{}".utf8), e.occurredAt) } == 0)
            #expect(try outbox.nextBatch(maxCount: 100, maxBytes: 1 << 20, body: noBody) == bulk, "untouched, a bulk batch keeps its bytes")

            let marked = Array("{\"rewritten\":true}".utf8)
            #expect(try outbox.rewriteAll { e in (marked, e.occurredAt) } == 3)
            let remade = try #require(try outbox.nextBatch(maxCount: 100, maxBytes: 1 << 20, body: noBody))
            #expect(remade.id != bulk.id, "a changed bulk batch goes under a new Idempotency-Key")
            #expect(Set(remade.events.map(\.eventID)) == [inBatch.eventID, queued.eventID])
            #expect(remade.events.allSatisfy { $0.payload == marked })
            let retried = try #require(try outbox.nextAlarm())
            #expect(retried.id == alarmBatch.id)
            #expect(retried.body == marked, "an alarm's retry carries the corrected stamp")

            // The old batch's request may still be in flight: its answer settles the events it
            // carried, wherever they are batched now, and nothing is left behind or doubled.
            try outbox.settle(bulk, outcomes: [inBatch.eventID: .delivered])
            let rest = try #require(try outbox.nextBatch(maxCount: 100, maxBytes: 1 << 20, body: noBody))
            try outbox.settle(rest, outcomes: Dictionary(uniqueKeysWithValues: rest.events.map { ($0.eventID, .delivered) }))
            #expect(try outbox.status().lanes[.bulk]?.depth ?? 0 == 0)
        }
    }

    /// A rewrite pass goes in steps of at most `limit` events from at most `window` seqs, the
    /// alarm lane's first, so the outbox is never held for a whole backlog; it picks up events
    /// queued between its steps and keeps the stored size right.
    @Test func aRewritePassGoesInBoundedStepsAlarmsFirst() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let outbox = try m.open(dir + "/o.sqlite")
            let queued = [m.make(.bedState, .update), m.make(.fallDetected), m.make(.bedState, .update), m.make(.bedState, .update),
                          m.make(.sensorSilent), m.make(.bedState, .update), m.make(.bedState, .update)]
            try outbox.append(queued)
            let marked = Array("{\"corrected\":true,\"padding\":\"longer than the event was\"}".utf8)
            var steps: [[EventID]] = [], spans: [UInt64] = []
            var cursor: RewriteCursor? = .start
            var late: Event? = nil
            while let at = cursor {
                var touched: [EventID] = [], seqs: [UInt64] = []
                let step = try outbox.rewriteQueued(from: at, limit: 2, window: 3) { e in
                    seqs.append(e.seq)
                    guard e.payload != marked else { return nil }
                    touched.append(e.eventID)
                    return (marked, e.occurredAt)
                }
                spans.append((seqs.max() ?? 0) - (seqs.min() ?? 0))
                #expect(step.rewritten == touched.count)
                steps.append(touched)
                cursor = step.next
                if steps.count == 4 {
                    late = m.make(.bedState, .update)
                    try outbox.append([late!])
                }
                #expect(steps.count < 20, "the pass ends")
            }
            #expect(steps.allSatisfy { $0.count <= 2 }, "\(steps)")
            #expect(spans.allSatisfy { $0 < 3 }, "no step looks past its window: \(spans)")
            let alarmsDone = try #require(steps.lastIndex { $0.contains(queued[4].eventID) })
            #expect(Set(steps[...alarmsDone].flatMap { $0 }) == [queued[1].eventID, queued[4].eventID], "the alarm lane's first")
            let all = steps.flatMap { $0 }
            #expect(all.count == Set(all).count, "none twice")
            #expect(Set(all) == Set((queued + [late!]).map(\.eventID)), "every one, the one queued meanwhile too")
            #expect(outbox.bytes == (try outbox.db.integer("SELECT SUM(length(payload)) FROM events")), "the size the capacity policy uses")
        }
    }
}
