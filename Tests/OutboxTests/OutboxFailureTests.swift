import Foundation
import SQLiteStore
import Testing
@testable import Outbox
import VaktpostCore

@Suite struct OutboxCapacityTests {
    @Test func whenFullOldestLogGoesFirstThenStateIsCoalescedAndAlarmsStay() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let outbox = try m.open(dir + "/outbox.sqlite", limits: OutboxLimits(maxBytes: 1 << 30, maxRows: 20))
            let alarms = (0..<6).map { _ in m.make(.bedNotReturned) }
            let logs = (0..<6).map { _ in m.make(.agentRestarted) }.map { e -> Event in var e = e; e.eventClass = .log; return e }
            let bedStates = (0..<5).map { _ in m.make(.bedState, .update, sensor: "bed") }
            let doorStates = (0..<5).map { _ in m.make(.doorState, .update, sensor: "front-door") }
            try outbox.append(alarms + logs)
            try outbox.append(bedStates + doorStates)  // 22 rows: 2 over
            var status = try outbox.status()
            // The three oldest logs went (to 1 % under the limit, one row here, so that eviction
            // runs once per 1 % of growth); states and alarms are untouched.
            #expect(status.evictedLog == 3)
            #expect(status.coalescedState == 0)
            try outbox.append((0..<8).map { _ in m.make(.sensorSilent) })  // far over: every log, then states coalesce
            status = try outbox.status()
            #expect(status.evictedLog == 6)
            #expect(status.coalescedState == 8)  // 10 states keep one per sensor
            let remaining = try outbox.fetch(where: "1", [], limit: 1000)
            #expect(remaining.filter { $0.eventClass == .log }.isEmpty)
            #expect(remaining.filter { $0.eventClass == .state }.map(\.eventID) == [bedStates.last!.eventID, doorStates.last!.eventID])
            #expect(remaining.filter { $0.type == "bed.not_returned" }.count == 6)  // never evicted
            #expect(remaining.filter { $0.type == "sensor.silent" }.count == 8)
            // Over the limit with only protected events left: kept, and the pressure is reported once.
            let pressure = remaining.filter { $0.type == "outbox.pressure" }
            #expect(pressure.count == 1)
            let data = try JSONValue.parse(String(decoding: pressure[0].payload, as: UTF8.self))
            #expect(data["state"] == .string("active"))
            #expect(data["data"]?["evictedLog"] == .int(3))
        }
    }

    /// A long outage past the limits with only protected events left: the policy's scans run
    /// once per 1 % of growth, not at every append (each would scan the whole outbox, alarms'
    /// appends too), and the outbox stays within that 1 % of where it could get to.
    @Test func pastTheLimitWithOnlyProtectedEventsThePolicyRunsOncePerPercentOfGrowth() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let outbox = try m.open(dir + "/outbox.sqlite", limits: OutboxLimits(maxBytes: 1 << 30, maxRows: 1000))
            try outbox.append((0..<1000).map { _ in m.make(.bedNotReturned) })
            try outbox.append([m.make(.bedState, .update)])  // over: the pass finds nothing to take
            let floor = try outbox.summary().depth
            #expect(floor == 1002, "the state and outbox.pressure")
            for _ in 0..<10 { try outbox.append([m.make(.bedState, .update)]) }
            #expect(try outbox.status().coalescedState == 0, "within 1 % (10 rows) of the floor: no pass")
            #expect(try outbox.summary().depth == floor + 10)
            try outbox.append([m.make(.bedState, .update)])
            #expect(try outbox.status().coalescedState == 11, "past it: one pass keeps the newest state")
            #expect(try outbox.summary().depth == floor)
        }
    }

    /// Another connection (`vaktpost queue retry-dead-letters` while the daemon runs) adds rows
    /// the daemon's counters do not know of: the next pass counts again before evicting.
    @Test func rowsAnotherConnectionAddedAreCountedBeforeEvicting() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let path = dir + "/outbox.sqlite"
            let outbox = try m.open(path, limits: OutboxLimits(maxBytes: 1 << 30, maxRows: 20))
            let states = (0..<18).map { i in m.make(.bedState, .update, sensor: "bed\(i)") }
            try outbox.append(states)
            let batch = try #require(try outbox.nextBatch(maxCount: 5, maxBytes: 1 << 20, body: noBody))
            try outbox.settle(batch, outcomes: Dictionary(uniqueKeysWithValues: batch.events.map { ($0.eventID, .rejected(reason: "422")) }))
            #expect(try OutboxFile.retryDeadLetters(path: path) == 5)  // 18 rows again; the daemon's count says 13
            let logs = (0..<8).map { _ in m.make(.agentRestarted) }.map { e -> Event in var e = e; e.eventClass = .log; return e }
            try outbox.append(Array(logs.prefix(3)))
            try outbox.append(Array(logs.suffix(5)))  // 26 rows, counted 21: over either way
            #expect(try outbox.status().evictedLog == 7, "down to 19 of the true 26, not of the 21 counted")
            #expect(try outbox.summary().depth == 19 + 1, "and outbox.pressure")
        }
    }

    @Test func pressureClearsOnceDeliveriesBringTheOutboxBelowEightyPercent() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let outbox = try m.open(dir + "/outbox.sqlite", limits: OutboxLimits(maxBytes: 1 << 30, maxRows: 10))
            try outbox.append((0..<12).map { _ in m.make(.bedNotReturned) })
            #expect(outbox.pressure != nil)
            while let batch = try outbox.nextAlarm(), outbox.pressure != nil {
                try outbox.settle(batch, outcomes: allDelivered(batch))
            }
            let cleared = try outbox.fetch(where: "type = 'outbox.pressure'", [], limit: 10)
                .map { try JSONValue.parse(String(decoding: $0.payload, as: UTF8.self)) }
                .filter { $0["state"] == .string("cleared") }
            #expect(cleared.count == 1)
            // Cleared when the queue (before the clearing event itself) was below 80 % of 10 rows.
            #expect(try #require(cleared.first?["data"]?["rows"]?.intValue) < 8)
        }
    }
}

@Suite struct OutboxRecoveryTests {
    @Test func aFileOfGarbageIsMovedAsideAndTheAgentRunsOn() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/outbox.sqlite"
            try Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: URL(fileURLWithPath: path))
            let m = EventMaker()
            let outbox = try m.open(path)
            let moved = try #require(outbox.recoveredFrom)
            #expect(moved.hasPrefix(dir + "/outbox.corrupt-2026"))
            #expect(moved.hasSuffix(".sqlite"))
            #expect(FileManager.default.fileExists(atPath: moved))
            let events = try outbox.fetch(where: "1", [], limit: 10)
            #expect(events.map(\.type) == ["outbox.recovered"])
            // The new numbering starts above anything the damaged file can have handed out.
            #expect(events[0].seq > 1_000_000_000_000)
            #expect(try outbox.append([m.make(.bedNotReturned)])[0] > events[0].seq)
        }
    }

    @Test func aDatabaseDamagedInTheMiddleIsCaughtByQuickCheck() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/outbox.sqlite"
            let m = EventMaker()
            do {
                let outbox = try m.open(path)
                try outbox.append((0..<400).map { _ in m.make(.bedState, .update, data: [("pad", .string(String(repeating: "x", count: 200)))]) })
                let c = try Connection(path: path)
                try c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            }
            // Overwrite a few pages of the b-tree with zeros, as a failing SD card would.
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
            try handle.seek(toOffset: 4096 * 3)
            handle.write(Data(repeating: 0, count: 4096 * 4))
            try handle.close()
            let outbox = try m.open(path)
            #expect(outbox.recoveredFrom != nil)
            #expect(try outbox.status().lanes[.alarm]?.depth == 1)  // only outbox.recovered
        }
    }
}

@Suite(.serialized) struct OutboxDiskFullTests {
    /// The disk fills during an outage: alarms are still accepted (into memory), can still be
    /// sent from there, `outbox.disk_full` is raised, and everything is written when space returns.
    func exerciseDiskFull(path: String, limits: OutboxLimits, fill: () throws -> Void, free: (Outbox) throws -> Void) throws {
        let m = EventMaker()
        let outbox = try m.open(path, limits: limits)
        try outbox.append((0..<20).map { _ in m.make(.bedState, .update) })
        try fill()
        var accepted = try appendUntilMemoryHolds(outbox, m)
        #expect(try outbox.status().inMemory > 0, "the disk never filled")
        let alarm = m.make(.fallDetected)
        try outbox.append([alarm])
        accepted.append(alarm)
        // Sendable from memory while the disk is full: the fall comes first (priority 9).
        let batch = try #require(try outbox.nextAlarm())
        #expect(batch.events.first?.type == "fall.detected")
        #expect(outbox.memory.contains { $0.eventID == alarm.eventID })
        #expect(try outbox.status().inMemory >= 2)
        try free(outbox)
        try outbox.flushMemory()
        #expect(try outbox.status().inMemory == 0)
        try outbox.settle(batch, outcomes: allDelivered(batch))
        let stored = Set(try outbox.fetch(where: "1", [], limit: 100_000).map(\.eventID))
        let delivered = Set(batch.events.map(\.eventID))
        for e in accepted where !delivered.contains(e.eventID) {
            #expect(stored.contains(e.eventID), "\(e.type) accepted during the full disk was lost")
        }
        let types = try outbox.fetch(where: "type = 'outbox.disk_full'", [], limit: 10)
            .map { try JSONValue.parse(String(decoding: $0.payload, as: UTF8.self))["state"] }
        #expect(types == [.string("active"), .string("cleared")])
        let c = try Connection(path: path, mode: .readOnly)
        #expect(try c.text("PRAGMA integrity_check") == "ok")
    }

    /// Alarms and padded state events until the disk is full and the outbox holds some in
    /// memory (at most 400 rounds); what it accepted.
    func appendUntilMemoryHolds(_ outbox: Outbox, _ m: EventMaker) throws -> [Event] {
        var accepted: [Event] = []
        for _ in 0..<400 {
            let batch = [m.make(.bedNotReturned), m.make(.bedState, .update, data: [("pad", .string(String(repeating: "y", count: 400)))])]
            try outbox.append(batch)
            accepted += batch
            if try outbox.status().inMemory > 0 { break }
        }
        return accepted
    }

    @Test func diskFullOnARealSmallFilesystem() throws {
        let dir = NSTemporaryDirectory() + "vaktpost-tmpfs-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=2m", "tmpfs", dir]
        try mount.run()
        mount.waitUntilExit()
        guard mount.terminationStatus == 0 else {
            // Not root or no CAP_SYS_ADMIN: the page-cap test below covers the same code path.
            return
        }
        defer {
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/bin/umount")
            umount.arguments = [dir]
            try? umount.run()
            umount.waitUntilExit()
        }
        let filler = dir + "/filler"
        try exerciseDiskFull(path: dir + "/outbox.sqlite", limits: OutboxLimits(), fill: {
            // Leave ~200 KiB free, then the outbox's own writes fill the rest.
            var attrs = try FileManager.default.attributesOfFileSystem(forPath: dir)
            let free = (attrs[.systemFreeSize] as! NSNumber).intValue
            try Data(repeating: 7, count: max(0, free - 200 * 1024)).write(to: URL(fileURLWithPath: filler))
            attrs = try FileManager.default.attributesOfFileSystem(forPath: dir)
        }, free: { _ in try FileManager.default.removeItem(atPath: filler) })
    }

    @Test func diskFullThroughThePageCap() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/outbox.sqlite"
            try exerciseDiskFull(path: path, limits: OutboxLimits(maxPages: 40), fill: {}, free: { outbox in
                try outbox.db.execute("PRAGMA max_page_count = 100000")  // the cap is per connection
            })
        }
    }

    @Test func whenMemoryHoldsAllTheAlarmsItMayTheNextOneIsRefusedLoudly() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let outbox = try m.open(dir + "/outbox.sqlite", limits: OutboxLimits(memoryEvents: 5, maxPages: 12))
            var refused: OutboxError? = nil
            for _ in 0..<2000 {
                do { try outbox.append([m.make(.bedNotReturned, data: [("pad", .string(String(repeating: "z", count: 300)))])]) } catch let e as OutboxError {
                    refused = e
                    break
                }
            }
            guard case .memoryFull(5, let cause)? = refused else { Issue.record("refused with \(String(describing: refused))"); return }
            #expect(cause.contains("full"))
            #expect(try outbox.status().inMemory <= 6)  // five alarms and the disk_full event
        }
    }

    /// The clock correction with the disk full: the stored part cannot be written (the caller
    /// tries again later), the events and batches held in memory are corrected all the same.
    @Test func aRewriteWithTheDiskFullStillCorrectsWhatMemoryHolds() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let outbox = try m.open(dir + "/outbox.sqlite", limits: OutboxLimits(maxPages: 40))
            _ = try appendUntilMemoryHolds(outbox, m)
            try outbox.append([m.make(.bedState, .update), m.make(.fallDetected)])
            let bulk = try #require(try outbox.nextBatch(maxCount: 100, maxBytes: 1 << 20, body: noBody))
            let alarm = try #require(try outbox.nextAlarm())
            #expect(bulk.inMemory && outbox.memory.contains { $0.eventID == alarm.events[0].eventID }, "the disk never filled")
            let big = Array(String(repeating: "x", count: 8192).utf8)  // far more than the full disk takes
            #expect(throws: SQLiteError.self) { try outbox.rewriteAll { e in (big, e.occurredAt) } }
            let remade = try #require(try outbox.nextBatch(maxCount: 100, maxBytes: 1 << 20, body: noBody))
            #expect(remade.id != bulk.id && remade.events.allSatisfy { $0.payload == big })
            let retried = try #require(try outbox.nextAlarm())
            #expect(retried.id == alarm.id && retried.body == big)
        }
    }
}
