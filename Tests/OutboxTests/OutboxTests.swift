import Foundation
import SQLiteStore
import Testing
@testable import Outbox
import VaktpostCore

@Suite struct OutboxTests {
    @Test func seqIsStrictlyIncreasingAndLanesFollowTheClass() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let outbox = try m.open(dir + "/outbox.sqlite")
            let seqs = try outbox.append([m.make(.bedState, .update), m.make(.bedNotReturned), m.make(.sensorBatteryLow), m.make(.testAlarm)])
            #expect(seqs == [1, 2, 3, 4])
            let status = try outbox.status()
            #expect(status.lanes[.alarm]?.depth == 3)
            #expect(status.lanes[.bulk]?.depth == 1)
            #expect(status.nextSeq == 5)
        }
    }

    @Test func alarmsGoInPriorityOrderAloneAndTakingOneWritesNothing() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let outbox = try m.open(dir + "/outbox.sqlite")
            let events = [m.make(.sensorBatteryLow), m.make(.doorLeftOpen), m.make(.fallDetected), m.make(.sensorSilent)]
            try outbox.append(events)
            // A write would fail now (and hold the outbox in memory): the alarm lane makes none.
            try outbox.db.execute("PRAGMA query_only = 1")
            // fall (9), door.left_open (5), silent (4), battery (3); ties by seq.
            let queued = try outbox.queuedAlarms(skipping: [], limit: 10)
            #expect(queued.map(\.type) == ["fall.detected", "door.left_open", "sensor.silent", "sensor.battery_low"])
            #expect(try outbox.queuedAlarms(skipping: [events[2].eventID], limit: 1).map(\.type) == ["door.left_open"], "one delivered, not settled yet")
            #expect(outbox.hold == nil)
            // Its request is the event itself, the same bytes at every attempt.
            let fall = OutboxBatch.alarm(queued[0])
            #expect(fall.body == queued[0].payload && fall.events == [queued[0]])
            try outbox.db.execute("PRAGMA query_only = 0")
            try outbox.settle(fall, outcomes: allDelivered(fall))
            #expect(try outbox.queuedAlarms(skipping: [], limit: 10).map(\.type) == ["door.left_open", "sensor.silent", "sensor.battery_low"])
            #expect(try outbox.status().lanes[.alarm]?.depth == 3)
        }
    }

    @Test func aBatchRetriedGetsTheSameBytesEvenAfterAReopen() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let outbox = try m.open(dir + "/outbox.sqlite")
            try outbox.append([m.make(.bedState, .update), m.make(.doorState, .update)])
            let first = try #require(try outbox.nextBatch(maxCount: 10, maxBytes: 1 << 20, body: noBody))
            #expect(first.events.count == 2)
            // Until settled, the same batch comes back: same id, same bytes, even after a reopen.
            let again = try #require(try outbox.nextBatch(maxCount: 1, maxBytes: 10, body: { _, _ in [9] }))
            #expect(again == first)
            let reopened = try m.open(dir + "/outbox.sqlite")
            #expect(try reopened.nextBatch(maxCount: 1, maxBytes: 10, body: { _, _ in [9] }) == first)
            try reopened.settle(first, outcomes: allDelivered(first))
            #expect(try reopened.nextBatch(maxCount: 10, maxBytes: 1 << 20, body: noBody) == nil)
            #expect(try reopened.status().lanes[.bulk]?.depth == 0)
        }
    }

    /// An agent before 2026-12 kept the alarm in flight as a stored batch: after the upgrade it
    /// is let go, and its alarm goes out alone like any other.
    @Test func anAlarmBatchAnOlderAgentLeftInFlightIsLetGo() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let outbox = try m.open(dir + "/outbox.sqlite")
            let fall = m.make(.fallDetected)
            try outbox.append([fall])
            // As the older agent kept it: the batch, and the event marked as taken by it.
            try outbox.db.execute("INSERT INTO batches (batch_id, lane, body, created_ns) VALUES ('older', \(Lane.alarm.code), x'7b7d', 1)")
            try outbox.db.execute("UPDATE events SET batch_id = 'older' WHERE event_id = '\(fall.eventID)'")
            let reopened = try m.open(dir + "/outbox.sqlite")
            #expect(try reopened.db.integer("SELECT COUNT(*) FROM batches") == 0)
            #expect(try reopened.db.integer("SELECT COUNT(*) FROM events WHERE batch_id IS NOT NULL") == 0)
            let alarm = try #require(try reopened.nextAlarm())
            #expect(alarm.events.map(\.eventID) == [fall.eventID])
            try reopened.settle(alarm, outcomes: allDelivered(alarm))
            #expect(try reopened.nextAlarm() == nil)
        }
    }

    @Test func batchesRespectCountAndBytesButAlwaysTakeOne() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let outbox = try m.open(dir + "/outbox.sqlite")
            try outbox.append((0..<10).map { _ in m.make(.bedState, .update) })
            #expect(try outbox.nextBatch(maxCount: 3, maxBytes: 1 << 20, body: noBody)?.events.count == 3)
            let outbox2 = try m.open(dir + "/other.sqlite")
            try outbox2.append((0..<10).map { _ in m.make(.bedState, .update) })
            #expect(try outbox2.nextBatch(maxCount: 100, maxBytes: 1, body: noBody)?.events.count == 1)
        }
    }

    @Test func rejectedEventsBecomeDeadLettersAndUnansweredOnesReturn() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let outbox = try m.open(dir + "/outbox.sqlite")
            let events = (0..<3).map { _ in m.make(.bedState, .update) }
            try outbox.append(events)
            let batch = try #require(try outbox.nextBatch(maxCount: 10, maxBytes: 1 << 20, body: noBody))
            try outbox.settle(batch, outcomes: [events[0].eventID: .delivered, events[1].eventID: .rejected(reason: "422 unknown type")])
            let dead = try outbox.deadLetters()
            #expect(dead.map(\.eventID) == [events[1].eventID])
            #expect(dead.first?.reason == "422 unknown type")
            // The unanswered one goes into a new batch under a new id.
            let next = try #require(try outbox.nextBatch(maxCount: 10, maxBytes: 1 << 20, body: noBody))
            #expect(next.events.map(\.eventID) == [events[2].eventID])
            #expect(next.id != batch.id)
            #expect(try outbox.retryDeadLetters() == 1)
            #expect(try outbox.deadLetters().isEmpty)
            #expect(try outbox.status().lanes[.bulk]?.depth == 2)
        }
    }

    /// The heartbeat's and the status line's summary, kept without reading the queue through,
    /// and `vaktpost status`'s depths, counted through the index, agree with a full count after
    /// every kind of change.
    @Test func theSummaryAgreesWithAFullCount() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let outbox = try m.open(dir + "/outbox.sqlite", limits: OutboxLimits(maxBytes: 1 << 30, maxRows: 20))
            func agrees(_ after: String) throws {
                let summary = try outbox.summary(), full = try outbox.status()
                #expect(summary.depth == full.lanes.values.reduce(0) { $0 + $1.depth } + full.inMemory, "\(after)")
                #expect(summary.oldest == (try outbox.fetch(where: "1", [], limit: 1_000).min { $0.seq < $1.seq })?.occurredAt, "\(after)")
                #expect(summary.nextSeq == full.nextSeq && summary.evictedLog == full.evictedLog, "\(after)")
                let depths = try outbox.status(sizes: false)
                #expect(depths.lanes.mapValues(\.depth) == full.lanes.mapValues(\.depth), "\(after): counted through the index alone")
                #expect(depths.lanes.values.allSatisfy { $0.bytes == 0 && $0.oldest == nil })
                #expect(depths.deadLetters == full.deadLetters && depths.inMemory == full.inMemory)
            }
            try agrees("empty")
            let logs = (0..<6).map { _ in m.make(.agentRestarted) }.map { e -> Event in var e = e; e.eventClass = .log; return e }
            try outbox.append(logs + (0..<6).map { _ in m.make(.bedNotReturned) })
            try outbox.append((0..<10).map { _ in m.make(.bedState, .update) })
            try agrees("appends that evicted")
            let batch = try #require(try outbox.nextBatch(maxCount: 3, maxBytes: 1 << 20, body: noBody))
            try outbox.settle(batch, outcomes: [batch.events[0].eventID: .delivered, batch.events[1].eventID: .rejected(reason: "422")])
            try agrees("a delivery and a dead letter")
            try outbox.retryDeadLetters()
            try agrees("dead letters retried")
            while let alarm = try outbox.nextAlarm() {
                try outbox.settle(alarm, outcomes: allDelivered(alarm))
            }
            try agrees("the alarm lane delivered")
        }
    }

    @Test func seqIsNeverReusedAfterDeliveryRestartOrCrash() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let path = dir + "/outbox.sqlite"
            var outbox: Outbox? = try m.open(path, limits: OutboxLimits(memoryEvents: 100))
            try outbox!.append([m.make(.bedNotReturned), m.make(.bedNotReturned)])
            while let alarm = try outbox!.nextAlarm() { try outbox!.settle(alarm, outcomes: allDelivered(alarm)) }
            try outbox!.close()
            outbox = nil
            // A clean stop: numbering continues where it was, even though every row was delivered.
            outbox = try m.open(path, limits: OutboxLimits(memoryEvents: 100))
            #expect(try outbox!.append([m.make(.bedNotReturned)]) == [3])
            outbox = nil  // deinit marks a clean stop as well
            // An unclean stop (the file is left marked "running"): skip the blocks memory and the
            // daemon's writer may have used (`seqReserve`: alarms stamped while a write hung may
            // be at the platform already).
            let c = try Connection(path: path)
            try c.execute("UPDATE meta SET value = 0 WHERE key = 'clean'")
            outbox = try m.open(path, limits: OutboxLimits(memoryEvents: 100))
            #expect(try outbox!.append([m.make(.bedNotReturned)]) == [304])
        }
    }

    @Test func ruleStateIsCommittedWithItsEvents() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let path = dir + "/outbox.sqlite"
            var state = EngineState()
            let json = try JSONValue.parse(#"{"version":1,"startedAt":5,"now":9,"sensors":{"bed":{"channels":{"occupied":{"stable":false,"changedAt":7}}}},"rules":{"night-bed":{"deadline":1807}}}"#)
            state = try EngineState(json: json)
            let outbox = try m.open(path)
            #expect(try outbox.loadRuleState() == nil)
            try outbox.append([m.make(.bedState, .update)], ruleState: state)
            #expect(try m.open(path).loadRuleState() == state)
        }
    }
}

@Suite struct OutboxFileTests {
    /// `vaktpost queue` reads while the daemon writes: WAL readers see committed rows and never block the writer.
    @Test func statusAndDeadLettersReadWhileTheWriterRuns() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let path = dir + "/outbox.sqlite"
            let outbox = try m.open(path)
            let events = [m.make(.bedNotReturned), m.make(.bedState, .update), m.make(.bedState, .update)]
            try outbox.append(events)
            let batch = try #require(try outbox.nextBatch(maxCount: 10, maxBytes: 1 << 20, body: noBody))
            try outbox.settle(batch, outcomes: [events[1].eventID: .rejected(reason: "400 bad payload")])
            var status = try OutboxFile.status(path: path)
            #expect(status.lanes[.alarm]?.depth == 1)
            #expect(status.lanes[.bulk]?.depth == 1)
            #expect(status.deadLetters == 1)
            #expect(try OutboxFile.deadLetters(path: path).first?.reason == "400 bad payload")
            // The writer carries on while a reader is open, and the reader sees it.
            try outbox.append([m.make(.sensorSilent)])
            status = try OutboxFile.status(path: path)
            #expect(status.lanes[.alarm]?.depth == 2)
            // Retrying from the CLI is a write of its own, beside the daemon's connection.
            #expect(try OutboxFile.retryDeadLetters(path: path) == 1)
            #expect(try outbox.status().lanes[.bulk]?.depth == 2)
        }
    }

    @Test func aMissingOutboxIsAnErrorNotANewFile() throws {
        try withTemporaryDirectory { dir in
            #expect(throws: SQLiteError.self) { try OutboxFile.status(path: dir + "/none.sqlite") }
            #expect(!FileManager.default.fileExists(atPath: dir + "/none.sqlite"))
        }
    }
}

@Test func limitsComeFromTheOutboxSectionOfTheConfig() throws {
    let config = try #require(ConfigReader.read("[hub]\nid = \"h\"\n[outbox]\nmax_bytes = \"8MiB\"\nmax_rows = 5000\n").config)
    let limits = OutboxLimits(config.outbox)
    #expect(limits.maxBytes == 8 << 20)
    #expect(limits.maxRows == 5000)
    #expect(limits.memoryEvents == 1000)
}
