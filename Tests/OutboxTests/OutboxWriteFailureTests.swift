import Foundation
import SQLiteStore
import Testing
import TestSupport
@testable import Outbox
@testable import VaktpostCore

/// A disk that takes no writes for another reason than being full: an SD card failing (I/O
/// errors, the kernel remounting it read-only) or another process holding the file's lock.
/// Alarms must still be accepted and sent, and nothing accepted may be lost or sent twice.
@Suite struct OutboxWriteFailureTests {
    func drain(_ outbox: Outbox, _ lane: Lane) throws -> [StoredEvent] {
        var sent: [StoredEvent] = []
        while let batch = try lane == .alarm ? outbox.nextAlarm() : outbox.nextBatch(maxCount: 100, maxBytes: 1 << 20, body: noBody) {
            sent += batch.events
            try outbox.settle(batch, outcomes: allDelivered(batch))
            #expect(sent.count < 100, "the same events are offered again and again")
            if sent.count >= 100 { break }
        }
        return sent
    }

    /// A card that died outright fails reads too: the followed alarms are still known (from the
    /// last read, the settles since, and what changed while held), so they can be escalated.
    @Test func followedAlarmsAreKnownWhenTheDiskCannotBeRead() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let path = dir + "/outbox.sqlite"
            let outbox = try m.open(path)
            func follow(_ event: Event) throws {
                try outbox.append([event])
                let batch = try #require(try outbox.nextAlarm())
                try outbox.settle(batch, outcomes: [event.eventID: .deliveredFollowing(location: "/alarms/\(event.eventID)")])
            }
            func followed() throws -> [EventID] { try outbox.followedAlarms().map(\.event.eventID) }
            let fall = m.make(.fallDetected), bed = m.make(.bedNotReturned), door = m.make(.doorOpenedAtNight)
            let acknowledged = m.make(.fallDetected)
            try follow(acknowledged)
            #expect(try followed() == [acknowledged.eventID])
            try outbox.follow(acknowledged.eventID, .ended)  // written: not followed from the list either
            try follow(fall)  // recorded, never read back before the card dies
            let card = try DeadCard(path)
            defer { card.revive() }
            try follow(bed)  // received as the disk failed
            #expect(outbox.hold != nil)
            try outbox.db.execute("PRAGMA shrink_memory")  // nothing left in SQLite's page cache either
            #expect((try? outbox.readFollowedAlarms()) == nil, "the table cannot be read")
            #expect(try followed() == [fall.eventID, bed.eventID])
            try outbox.follow(fall.eventID, .ended)
            #expect(try followed() == [bed.eventID])
            card.revive()
            try outbox.flushMemory()
            try follow(door)
            let again = try DeadCard(path)
            defer { again.revive() }
            try outbox.append([m.make(.bedState, .update)])
            try outbox.db.execute("PRAGMA shrink_memory")
            #expect((try? outbox.readFollowedAlarms()) == nil, "the table cannot be read")
            #expect(try followed() == [bed.eventID, door.eventID])
            again.revive()
            #expect(try outbox.readFollowedAlarms().map(\.event.eventID) == [bed.eventID, door.eventID])
        }
    }

    @Test func aDiskThatTakesNoWritesKeepsTheAlarmsGoingFromMemory() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let path = dir + "/outbox.sqlite"
            let outbox = try m.open(path)
            let earlier = [m.make(.bedNotReturned), m.make(.bedState, .update)]
            let firstSeq = try outbox.append(earlier)[0]
            let inFlight = try #require(try outbox.nextAlarm())

            // What a file system remounted read-only does to every write.
            try outbox.db.execute("PRAGMA query_only = 1")
            let fall = m.make(.fallDetected), state = m.make(.bedState, .update)
            try outbox.append([fall, state])
            #expect(outbox.hold?.type == .outboxWriteFailed)
            #expect(outbox.hold?.cause.contains("readonly") == true)
            #expect(throws: SQLiteError.self) { try outbox.flushMemory() }
            #expect(throws: SQLiteError.self) { try outbox.flushMemory() }

            // The platform took the alarm in flight: recorded later, and not sent again meanwhile.
            try outbox.settle(inFlight, outcomes: allDelivered(inFlight))
            #expect(try drain(outbox, .alarm).map(\.type) == ["fall.detected", "outbox.write_failed"])
            #expect(try !outbox.hasQueued(.alarm))
            #expect(Set(try drain(outbox, .bulk).map(\.eventID)) == [earlier[1].eventID, state.eventID])
            #expect(try outbox.summary().depth == 0)

            try outbox.db.execute("PRAGMA query_only = 0")
            try outbox.flushMemory()
            #expect(outbox.hold == nil)
            // Left: the clearing of outbox.write_failed, and no seq skipped by the failed tries.
            let left = try outbox.fetch(where: "1", [], limit: 100)
            #expect(left.map(\.type) == ["outbox.write_failed"])
            #expect(left.first.map { String(decoding: $0.payload, as: UTF8.self).contains("\"cleared\"") } == true)
            #expect(left.first?.seq == firstSeq + 5)
            #expect(try outbox.status().inMemory == 0)
            #expect(try outbox.status().lanes[.bulk]?.depth == 0)
            let c = try Connection(path: path, mode: .readOnly)
            #expect(try c.text("PRAGMA integrity_check") == "ok")
        }
    }

    @Test func aLockAnotherProcessHoldsCostsOneWaitNotOnePerEvent() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let path = dir + "/outbox.sqlite"
            let outbox = try m.open(path, limits: OutboxLimits(lockWait: .milliseconds(200)))
            try outbox.append([m.make(.bedState, .update)])
            let other = try Connection(path: path)
            try other.execute("BEGIN IMMEDIATE")
            try outbox.append([m.make(.fallDetected)])
            #expect(outbox.hold?.cause.contains("locked") == true)
            // Each try of the disk would wait for the lock again with the outbox held: spaced.
            for _ in 0..<50 { try outbox.append([m.make(.bedNotReturned)]) }
            #expect(outbox.retries <= 2)
            let first = try #require(try outbox.nextAlarm())
            #expect(first.events.map(\.type) == ["fall.detected"] && outbox.memory.contains { $0.eventID == first.events[0].eventID })

            try other.execute("COMMIT")
            try outbox.flushMemory()
            #expect(outbox.hold == nil)
            try outbox.settle(first, outcomes: allDelivered(first))
            // 50 alarms and outbox.write_failed raised and cleared; the state from before.
            let status = try outbox.status()
            #expect(status.lanes[.alarm]?.depth == 52)
            #expect(status.lanes[.bulk]?.depth == 1)
            #expect(status.inMemory == 0)
        }
    }

    @Test func aDeliveryTheDiskCouldNotRecordIsRecordedWithTheMemoryQueue() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let path = dir + "/outbox.sqlite"
            let outbox = try m.open(path)
            try outbox.append((0..<5).map { _ in m.make(.bedState, .update) } + [m.make(.sensorBatteryLow)])
            let bulk = try #require(try outbox.nextBatch(maxCount: 3, maxBytes: 1 << 20, body: noBody))
            let alarm = try #require(try outbox.nextAlarm())
            try outbox.db.execute("PRAGMA query_only = 1")
            // Found out by the settle itself: the hold starts there, and says so.
            try outbox.settle(bulk, outcomes: allDelivered(bulk))
            #expect(outbox.hold?.type == .outboxWriteFailed)
            try outbox.settle(alarm, outcomes: [alarm.events[0].eventID: .rejected(reason: "422: unknown sensor")])
            #expect(try drain(outbox, .bulk).count == 2)
            #expect(try drain(outbox, .alarm).map(\.type) == ["outbox.write_failed"])

            try outbox.db.execute("PRAGMA query_only = 0")
            try outbox.flushMemory()
            #expect(try outbox.fetch(where: "class = 'state'", [], limit: 100).isEmpty)
            #expect(try outbox.deadLetters().map(\.type) == ["sensor.battery_low"])
            #expect(try outbox.fetch(where: "batch_id IS NOT NULL", [], limit: 100).isEmpty)
            #expect(try Connection(path: path).integer("SELECT COUNT(*) FROM batches") == 0)
        }
    }

    /// The follow-up of alarms the platform received goes on while the disk takes no writes: an
    /// escalation forgotten there would be raised (and sent to the secondary platform) at
    /// every poll, an acknowledgement forgotten would be reported at every poll.
    @Test func followingAlarmsGoesOnWhileTheDiskTakesNoWrites() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let path = dir + "/outbox.sqlite"
            let outbox = try m.open(path)
            try outbox.append([m.make(.bedNotReturned), m.make(.fallDetected)])
            let fall = try #require(try outbox.nextAlarm())
            try outbox.settle(fall, outcomes: [fall.events[0].eventID: .deliveredFollowing(location: "/alarms/fall")])
            let bed = try #require(try outbox.nextAlarm())

            try outbox.db.execute("PRAGMA query_only = 1")
            let receivedAt = m.clock
            try outbox.settle(bed, outcomes: [bed.events[0].eventID: .deliveredFollowing(location: "/alarms/bed")])
            #expect(outbox.hold != nil)
            #expect(try outbox.followedAlarms().map(\.location) == ["/alarms/bed", "/alarms/fall"])
            let escalation = m.make(.alarmUnacknowledged).eventID
            try outbox.follow(bed.events[0].eventID, .status("presented", escalation))
            try outbox.follow(fall.events[0].eventID, .ended)
            try outbox.setNote("command_seq", "7")
            let followed = try outbox.followedAlarms()
            #expect(followed.map(\.location) == ["/alarms/bed"])
            #expect(followed.first?.escalation == escalation && followed.first?.status == "presented")
            #expect(try outbox.note("command_seq") == "7")

            try outbox.db.execute("PRAGMA query_only = 0")
            try outbox.flushMemory()
            let reopened = try m.open(path)
            let after = try reopened.followedAlarms()
            #expect(after.map(\.location) == ["/alarms/bed"])
            #expect(after.first?.escalation == escalation && after.first?.status == "presented")
            #expect(after.first?.acceptedAt == receivedAt)
            #expect(try reopened.note("command_seq") == "7")
        }
    }

    /// The platform lost an alarm it had received while the disk took no writes (404): it is
    /// sent again from memory, and stays queued when memory is written.
    @Test func anAlarmReceivedAndLostMeanwhileIsQueuedAgain() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let outbox = try m.open(dir + "/outbox.sqlite")
            try outbox.append([m.make(.fallDetected)])
            let fall = try #require(try outbox.nextAlarm())
            try outbox.db.execute("PRAGMA query_only = 1")
            try outbox.settle(fall, outcomes: [fall.events[0].eventID: .deliveredFollowing(location: "/alarms/fall")])
            try outbox.requeueFollowed(fall.events[0].eventID)
            #expect(try outbox.followedAlarms().isEmpty)
            try outbox.db.execute("PRAGMA query_only = 0")
            try outbox.flushMemory()
            #expect(try outbox.followedAlarms().isEmpty)
            let queued = try outbox.fetch(where: "lane = 0 AND type = 'fall.detected'", [], limit: 10)
            #expect(queued.map(\.eventID) == [fall.events[0].eventID])
        }
    }
}

/// The stand-in's side: where it continues the seqs, and what the outbox takes back from it.
@Suite struct OutboxStandInTests {
    @Test func theNextSeqIsReadWithoutWritingAndAnUncleanStopLeavesAGap() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let path = dir + "/outbox.sqlite"
            do {
                let outbox = try m.open(path)
                try outbox.append((0..<3).map { _ in m.make(.bedState, .update) })
                try outbox.close()
            }
            #expect(Outbox.nextSeq(readingFrom: path) == 4)
            let running = try m.open(path)  // not closed: what an unclean stop leaves
            try running.append([m.make(.fallDetected)])
            #expect(try #require(Outbox.nextSeq(readingFrom: path)) >= 5 + 1000)
            withExtendedLifetime(running) {}
            #expect(Outbox.nextSeq(readingFrom: dir + "/none.sqlite") == nil)
        }
    }

    @Test func theOutboxTakesBackWhatTheStandInHolds() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let path = dir + "/outbox.sqlite", standInPath = dir + "/stand-in.sqlite"
            let outbox = try m.open(path)
            try outbox.append([m.make(.bedState, .update)])
            let standIn = try Outbox(path: standInPath, seqFloor: 500, now: { m.clock }) { type, state, correlation, data in
                m.make(type, state, sensor: nil, correlation: correlation, data: data)
            }
            let seqs = try standIn.append([m.make(.fallDetected), m.make(.bedNotReturned), m.make(.sensorBatteryLow), m.make(.bedState, .update)])
            #expect(seqs.first == 500)
            let fall = try #require(try standIn.nextAlarm())
            try standIn.settle(fall, outcomes: [fall.events[0].eventID: .deliveredFollowing(location: "/alarms/fall")])
            let bed = try #require(try standIn.nextAlarm())
            try standIn.settle(bed, outcomes: [bed.events[0].eventID: .rejected(reason: "422")])
            _ = try #require(try standIn.nextAlarm())  // in flight
            let raised = m.make(.outboxWriteFailed).eventID
            try standIn.setNote("stand_in_event", raised.description)
            try standIn.setNote("command_seq", "12")

            let (moved, event, type) = try outbox.absorb(standIn: standInPath)
            #expect(moved == 2 && event == raised && type == .outboxWriteFailed)
            let queued = try outbox.fetch(where: "1", [], limit: 100)
            #expect(queued.map(\.type) == ["sensor.battery_low", "bed.state", "bed.state"])
            #expect(try outbox.fetch(where: "batch_id IS NOT NULL", [], limit: 100).isEmpty, "batches are made anew")
            #expect(try outbox.followedAlarms().map(\.location) == ["/alarms/fall"])
            #expect(try outbox.deadLetters().map(\.type) == ["bed.not_returned"])
            #expect(try outbox.note("command_seq") == "12")
            #expect(try outbox.note("stand_in_event") == nil)
            #expect(try outbox.append([m.make(.bedState, .update)]).first! > seqs.last!)
        }
    }

    /// A stop while the disk takes no writes: what memory holds goes to a stand-in (not lost
    /// with the process), and the start that can write again takes it all back: the events, the
    /// alarms the platform received meanwhile with their escalations, the endings, the notes,
    /// the rule state, the seq counter.
    @Test func whatMemoryHoldsAtAStopGoesToAStandInAndComesBack() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let path = dir + "/outbox.sqlite", standInPath = dir + "/stand-in.sqlite"
            let outbox = try m.open(path)
            try outbox.append([m.make(.bedNotReturned), m.make(.fallDetected), m.make(.fallDetected)])
            var followedBefore: [EventID] = []
            for location in ["/alarms/fall", "/alarms/fall-2"] {
                let fall = try #require(try outbox.nextAlarm())
                try outbox.settle(fall, outcomes: [fall.events[0].eventID: .deliveredFollowing(location: location)])
                followedBefore.append(fall.events[0].eventID)
            }
            let bed = try #require(try outbox.nextAlarm())

            try outbox.db.execute("PRAGMA query_only = 1")
            try outbox.settle(bed, outcomes: [bed.events[0].eventID: .deliveredFollowing(location: "/alarms/bed")])
            let escalation = m.make(.alarmUnacknowledged).eventID
            try outbox.follow(followedBefore[0], .status("presented", escalation))  // newer than the table's word
            try outbox.follow(followedBefore[1], .ended)  // acknowledged: must not be followed again
            var state = EngineState()
            state.now = m.clock
            let door = m.make(.doorOpenedAtNight), doorState = m.make(.doorState, .update)
            let seqs = try outbox.append([door, doorState], ruleState: state)
            try outbox.setNote("command_seq", "7")
            let raised = try #require(outbox.hold?.eventID)
            #expect(throws: SQLiteError.self) { try outbox.flushMemory() }

            #expect(try outbox.spill(to: standInPath, ruleState: nil) == 3)
            let back = try m.open(path)  // the next start, the disk writable again
            let (moved, event, type) = try back.absorb(standIn: standInPath)
            #expect(moved == 3 && event == raised && type == .outboxWriteFailed)
            // The bed alarm's delivery was never recorded here: sent again, answered as a duplicate.
            let queuedTypes = try back.fetch(where: "1", [], limit: 100).map(\.type)
            #expect(queuedTypes.sorted() == ["bed.not_returned", "door.opened_at_night", "door.state", "outbox.write_failed"])
            let followed = try back.followedAlarms()
            #expect(followed.map(\.location) == ["/alarms/bed", "/alarms/fall"])
            let fall = followed.first { $0.location == "/alarms/fall" }
            #expect(fall?.escalation == escalation && fall?.status == "presented")
            #expect(try back.note("command_seq") == "7")
            #expect(try back.loadRuleState() == state)
            #expect(try back.append([m.make(.bedState, .update)]).first! > seqs.last! + 1)
        }
    }

    /// A full disk at the stop: the event to clear when the stand-in is taken back is
    /// `outbox.disk_full`.
    @Test func aStandInFromAFullDiskClearsTheDiskFullEvent() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let path = dir + "/outbox.sqlite", standInPath = dir + "/stand-in.sqlite"
            let outbox = try m.open(path, limits: OutboxLimits(maxPages: 40))
            for _ in 0..<400 where outbox.hold == nil {
                try outbox.append([m.make(.bedState, .update, data: [("pad", .string(String(repeating: "y", count: 400)))])])
            }
            let alarm = m.make(.fallDetected)
            try outbox.append([alarm])
            let raised = try #require(outbox.hold?.eventID)
            #expect(outbox.hold?.type == .outboxDiskFull)
            #expect(try outbox.spill(to: standInPath, ruleState: nil) >= 2)
            let back = try m.open(path)
            try back.db.execute("PRAGMA max_page_count = 1000")  // room again
            let (_, event, type) = try back.absorb(standIn: standInPath)
            #expect(event == raised && type == .outboxDiskFull)
            #expect(try back.fetch(where: "1", [], limit: 1000).contains { $0.eventID == alarm.eventID })
        }
    }

    /// A start that could not take the stand-in in (`absorb` failed) gives out seqs above the
    /// stand-in's, so that the next start's `absorb` finds none given twice.
    @Test func aStandInKeptForTheNextStartKeepsItsSeqs() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let outbox = try m.open(dir + "/outbox.sqlite")
            try outbox.append([m.make(.bedState, .update)])
            let standIn = try Outbox(path: dir + "/stand-in.sqlite", seqFloor: 500, now: { m.clock }) { type, state, correlation, data in
                m.make(type, state, sensor: nil, correlation: correlation, data: data)
            }
            let theirs = try standIn.append([m.make(.fallDetected), m.make(.bedNotReturned)])
            try standIn.close()
            outbox.continueAbove(standIn: dir + "/stand-in.sqlite")
            #expect(try outbox.append([m.make(.bedState, .update)]).first! > theirs.last!)
            #expect(try outbox.absorb(standIn: dir + "/stand-in.sqlite").events == 2)
        }
    }

    /// Seqs both gave out (the stand-in's floor from a clock that was behind): nothing is taken
    /// in, nothing dropped, and the error says so.
    @Test func aStandInWhoseSeqsClashIsKeptWhole() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let outbox = try m.open(dir + "/outbox.sqlite")
            try outbox.append((0..<3).map { _ in m.make(.bedState, .update) })
            let standIn = try Outbox(path: dir + "/stand-in.sqlite", seqFloor: 2, now: { m.clock }) { type, state, correlation, data in
                m.make(type, state, sensor: nil, correlation: correlation, data: data)
            }
            try standIn.append([m.make(.fallDetected), m.make(.bedNotReturned)])
            #expect(throws: OutboxError.standInClash(events: 2, path: dir + "/stand-in.sqlite")) { try outbox.absorb(standIn: dir + "/stand-in.sqlite") }
            #expect(try outbox.fetch(where: "1", [], limit: 100).map(\.type) == ["bed.state", "bed.state", "bed.state"])
        }
    }
}
