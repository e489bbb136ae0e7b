import Foundation
import Testing
@testable import Outbox
import VaktpostCore

/// Alarms the platform received stay in the outbox until an operator takes them.
@Suite struct FollowedAlarmTests {
    @Test func aReceivedAlarmIsFollowedAcrossARestartAndCanGoBackToTheQueue() throws {
        try withTemporaryDirectory { dir in
            let maker = EventMaker()
            let alarm = maker.make(.fallDetected)
            var outbox: Outbox? = try maker.open(dir + "/o.sqlite")
            try outbox!.append([alarm])
            let batch = try #require(try outbox!.nextBatch(lane: .alarm, maxCount: 1, maxBytes: 1 << 20, body: noBody))
            try outbox!.settle(batch, outcomes: [alarm.eventID: .deliveredFollowing(location: "/v1/hubs/h/alarms/\(alarm.eventID)")])
            #expect(try outbox!.status().lanes[.alarm]?.depth == 0)
            #expect(try outbox!.status().awaitingAcknowledgement == 1)
            let escalation = maker.make(.alarmUnacknowledged).eventID
            try outbox!.updateFollowed(alarm.eventID, status: "presented", escalation: escalation)
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
            let again = try #require(try reopened.nextBatch(lane: .alarm, maxCount: 1, maxBytes: 1 << 20, body: noBody))
            #expect(again.events.map(\.eventID) == [alarm.eventID])
            #expect(again.events.first?.payload == batch.events.first?.payload)
            try reopened.settle(again, outcomes: [alarm.eventID: .deliveredFollowing(location: "/x")])
            try reopened.endFollowing(alarm.eventID)
            #expect(try reopened.status().awaitingAcknowledgement == 0)
        }
    }

    /// The clock correction may rewrite queued events and alarm-lane retries, never a bulk batch.
    @Test func rewritingLeavesBulkBatchesAlone() throws {
        try withTemporaryDirectory { dir in
            let maker = EventMaker()
            let outbox = try maker.open(dir + "/o.sqlite")
            let inBatch = maker.make(.bedState, .update)
            let alarm = maker.make(.sensorSilent)
            try outbox.append([inBatch, alarm])
            let bulk = try #require(try outbox.nextBatch(lane: .bulk, maxCount: 100, maxBytes: 1 << 20, body: noBody))
            let alarmBatch = try #require(try outbox.nextBatch(lane: .alarm, maxCount: 1, maxBytes: 1 << 20) { _, events in events[0].payload })
            let queued = maker.make(.bedState, .update)
            try outbox.append([queued])
            let marked = Array("{\"rewritten\":true}".utf8)
            let n = try outbox.rewriteQueued { e in (marked, e.occurredAt) }
            #expect(n == 2)
            #expect(try outbox.nextBatch(lane: .bulk, maxCount: 100, maxBytes: 1 << 20, body: noBody) == bulk, "a bulk batch keeps its bytes")
            let retried = try #require(try outbox.nextBatch(lane: .alarm, maxCount: 1, maxBytes: 1 << 20) { _, events in events[0].payload })
            #expect(retried.id == alarmBatch.id)
            #expect(retried.body == marked, "an alarm's retry carries the corrected stamp")
        }
    }
}
