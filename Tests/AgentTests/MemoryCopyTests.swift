import Dispatch
import Foundation
@testable import Agent
@testable import Outbox
import SQLiteStore
import Synchronization
import Testing
import TestSupport
@testable import VaktpostCore

/// What memory holds for the outbox (events waiting for a write that hangs, events the outbox
/// holds while the disk refuses writes) is kept in a copy on tmpfs (`MemoryCopy`), so that a kill
/// meanwhile (systemd's, past the stop's limit; a crash; the watchdog) loses nothing: the next
/// start takes it in.
@Suite(.serialized) struct MemoryCopyTests {
    var rng = SplitMix64(seed: 41)

    mutating func event(_ type: EventType, _ state: EventState = .active) -> Event {
        var e = DeliveryLanesTests.event(type, state, using: &rng)
        e.sensor = SensorID("bed")
        return e
    }

    static func fresh(_ path: String, floor: UInt64 = 0) throws -> Outbox {
        try Outbox(path: path, seqFloor: floor, now: wallNow, makeEvent: HubDaemon.ownEventMaker(stamp: {
            EventTime(wall: $0, utcOffsetSeconds: 0, boottimeNanoseconds: 1, bootID: "b", clockSynced: true)
        }, now: wallNow))
    }

    static func copy(at path: String) -> MemoryCopy {
        MemoryCopy(path: path, limits: OutboxLimits()) { path, floor in try fresh(path, floor: floor) }
    }

    /// What a start after a kill would find: the copy taken into an outbox of its own, with the
    /// hang and the hold it noted.
    static func takenIn(_ copy: String, into path: String) throws -> (events: [StoredEvent], state: EngineState?, hang: EventID?, hold: EventID?) {
        let box = try fresh(path)
        let (_, hold, _) = try box.absorb(standIn: copy)
        return (try box.fetch(where: "1", [], limit: 100), try box.loadRuleState(), try box.note("hang_event").flatMap(EventID.init), hold)
    }

    /// An outbox with its writer running, and a copy for it, in a directory of their own.
    static func withWriter(_ body: (_ dir: String, _ locked: LockedOutbox, _ copy: MemoryCopy) throws -> Void) throws {
        try withTemporaryDirectory { dir in
            let locked = try LockedOutbox(Self.fresh(dir + "/outbox.sqlite"))
            locked.startWriter()
            defer { locked.stopWriter() }
            try body(dir, locked, copy(at: dir + "/copy.sqlite"))
        }
    }

    @Test mutating func whatWaitsForAWriteThatHangsIsCopiedUntilItIsWritten() throws {
        try Self.withWriter { dir, locked, copy in
            let hangEvent = EventID.v7(unixMilliseconds: wallNow().millisecondsSinceEpoch, using: &rng)
            var ruleState = EngineState()
            ruleState.startedAt = wallNow()

            #expect(copy.update(locked, hanging: false, hang: nil) == nil)
            #expect(access(copy.path, F_OK) != 0, "no hang, no copy")

            let over = holdOutbox(locked, for: 4)
            let state = event(.bedState, .update), alarm = event(.fallDetected)
            #expect(locked.hand([state, alarm], ruleState: ruleState) == .behind)
            let stamped = Dictionary(uniqueKeysWithValues: locked.unwritten().events.map { ($0.eventID, $0.seq) })
            #expect(stamped.count == 2 && stamped.values.allSatisfy { $0 != nil }, "before the write is known to hang, seqs are taken at the hand-over")
            #expect(waitUntil(2) { locked.hangingFor != nil })
            #expect(copy.update(locked, hanging: true, hang: nil) == nil)
            #expect(access(copy.path, F_OK) == 0, "a copy while the write hangs")
            #expect(copy.current == copy.path, "the stop's word: where what waits is")

            // Killed now: the next start has both events, with their seqs, and the rule state.
            var found = try Self.takenIn(copy.path, into: dir + "/after-kill.sqlite")
            #expect(Set(found.events.map(\.eventID)) == [state.eventID, alarm.eventID])
            #expect(found.events.allSatisfy { stamped[$0.eventID] == $0.seq })
            #expect(found.state == ruleState)
            #expect(found.hang == nil)

            // Kept in step: what is handed over next, and the hang's event once it is reported.
            let later = event(.bedState, .update)
            #expect(locked.hand([later], ruleState: nil) == .behind)
            #expect(locked.unwritten().events.last?.seq == nil, "a state event handed over during a hang gets its seq when written")
            #expect(copy.update(locked, hanging: true, hang: hangEvent) == nil)
            found = try Self.takenIn(copy.path, into: dir + "/after-later-kill.sqlite")
            #expect(Set(found.events.map(\.eventID)) == [state.eventID, alarm.eventID, later.eventID])
            let laterSeq = try #require(found.events.first { $0.eventID == later.eventID }?.seq)
            #expect(laterSeq > locked.seqs.peek + 1000, "its seq in the copy from above anything the outbox can give out meanwhile")
            #expect(found.state == ruleState, "the newest state not yet written")
            #expect(found.hang == hangEvent, "the start clears the hang it reported")

            // Readings alone rewrite it at most once a second; an alarm at once.
            let reading = event(.bedState, .update), second = event(.fallDetected)
            #expect(locked.hand([reading], ruleState: nil) == .behind)
            #expect(copy.update(locked, hanging: true, hang: hangEvent) == nil)
            #expect(try Self.takenIn(copy.path, into: dir + "/soon.sqlite").events.count == 3, "a reading within the second waits for the next copy")
            #expect(locked.hand([second], ruleState: nil) == .behind)
            #expect(copy.update(locked, hanging: true, hang: hangEvent) == nil)
            #expect(Set(try Self.takenIn(copy.path, into: dir + "/alarm.sqlite").events.map(\.eventID)).isSuperset(of: [reading.eventID, second.eventID]))

            // Taken in by an outbox that has some of it already (the write returned as the agent
            // was killed): those are not stored twice.
            let outboxAfter = try Self.fresh(dir + "/written.sqlite")
            _ = try outboxAfter.append([Self.with(state, seq: try #require(stamped[state.eventID] ?? nil))])
            let (moved, _, _) = try outboxAfter.absorb(standIn: copy.path)
            #expect(moved == 4)
            #expect(try outboxAfter.fetch(where: "1", [], limit: 100).count == 5)

            // The write returns: everything is in the outbox, the copy goes.
            over.wait()
            #expect(waitUntil(3) { locked.waitingForWrite == 0 })
            #expect(copy.update(locked, hanging: false, hang: hangEvent) == nil)
            #expect(access(copy.path, F_OK) != 0, "removed once everything in it is written")
            #expect(copy.current == nil)
        }
    }

    /// A disk that refuses writes (an SD card remounted read-only): what the outbox holds in
    /// memory is copied, with its technical event for the next start to clear; a write that
    /// hangs on top of it adds to the copy without losing the hold's events; once the disk
    /// writes again and nothing waits, the copy goes.
    @Test mutating func whatTheOutboxHoldsWhileTheDiskRefusesWritesIsCopied() throws {
        try Self.withWriter { dir, locked, copy in
            let refused = event(.fallDetected), reading = event(.bedState, .update)
            try locked.with { try $0.db.execute("PRAGMA query_only = 1") }
            #expect(locked.hand([refused, reading], ruleState: nil) == .stored, "held in memory by the outbox")
            let hold = try #require(try locked.with { $0.hold?.eventID })
            let holding = locked.holdingInMemory.load(ordering: .relaxed)
            #expect(holding, "seen without the lock")
            #expect(copy.update(locked, hanging: false, hang: nil) == nil)
            var found = try Self.takenIn(copy.path, into: dir + "/after-kill.sqlite")
            #expect(Set(found.events.map(\.eventID)).isSuperset(of: [refused.eventID, reading.eventID]))
            #expect(found.hold == hold, "the start clears the hold it reported")

            // Within the second, a reading held waits for the next copy; an alarm goes at once.
            let next = event(.bedState, .update), alarm = event(.fallDetected)
            #expect(locked.hand([next], ruleState: nil) == .stored)
            #expect(copy.update(locked, hanging: false, hang: nil) == nil)
            #expect(try !Self.takenIn(copy.path, into: dir + "/soon.sqlite").events.contains { $0.eventID == next.eventID })
            #expect(locked.hand([alarm], ruleState: nil) == .stored)
            #expect(copy.update(locked, hanging: false, hang: nil) == nil)
            #expect(Set(try Self.takenIn(copy.path, into: dir + "/alarm.sqlite").events.map(\.eventID)).isSuperset(of: [next.eventID, alarm.eventID]))

            // A write that hangs on top: the hold cannot be read, and is not lost from the copy.
            let over = holdOutbox(locked, for: 2)
            let pressed = event(.fallDetected)
            #expect(locked.hand([pressed], ruleState: nil) == .behind)
            #expect(copy.update(locked, hanging: true, hang: nil) == nil)
            found = try Self.takenIn(copy.path, into: dir + "/after-hang-kill.sqlite")
            #expect(Set(found.events.map(\.eventID)).isSuperset(of: [refused.eventID, reading.eventID, pressed.eventID]))
            over.wait()

            // The disk writes again: everything in the outbox, the copy gone.
            try locked.with { try $0.db.execute("PRAGMA query_only = 0") }
            #expect(waitUntil(3) { (try? locked.with { o in try o.flushMemory(); return o.hold == nil }) == true && locked.waitingForWrite == 0 })
            #expect(copy.update(locked, hanging: false, hang: nil) == nil)
            #expect(access(copy.path, F_OK) != 0, "removed once nothing is held")
            #expect(try locked.with { try $0.fetch(where: "1", [], limit: 100) }.count >= 3)
        }
    }

    static func with(_ e: Event, seq: UInt64) -> Event {
        var e = e
        e.seq = seq
        return e
    }

    /// A copy an earlier run left and the start could not take in is the only place its events
    /// are: never replaced by a new one.
    @Test mutating func aCopyLeftByAnEarlierRunIsNeverReplaced() throws {
        try Self.withWriter { dir, locked, copy in
            let earlier = event(.fallDetected)
            try copy.write([Self.with(earlier, seq: 7)], ruleState: nil, hang: nil, floor: 100)
            let over = holdOutbox(locked, for: 2)
            #expect(locked.hand([event(.bedState, .update)], ruleState: nil) == .behind)
            #expect(waitUntil(2) { locked.hangingFor != nil })
            let said = try #require(copy.update(locked, hanging: true, hang: nil))
            #expect(said.contains("from an earlier run"))
            #expect(copy.update(locked, hanging: true, hang: nil) == nil, "said once")
            over.wait()
            #expect(waitUntil(3) { locked.waitingForWrite == 0 })
            _ = copy.update(locked, hanging: false, hang: nil)
            #expect(try Self.takenIn(copy.path, into: dir + "/next.sqlite").events.map(\.eventID) == [earlier.eventID], "still the earlier run's")
        }
    }

    /// The daemon: while a write hangs the rules' loop keeps the copy; the stop, once the write
    /// returned, removes it; and a start finds one left by a kill, takes it in and clears the
    /// hang that run reported.
    @Test mutating func theDaemonKeepsACopyWhileAWriteHangsAndTakesInOneLeftByAKill() throws {
        try withTemporaryDirectory { dir in
            let socket = dir + "/ctl.sock", path = MemoryCopy.path(socket: socket)
            let d = try buttonHub(dir, outbox: dir + "/outbox.sqlite", socket: socket)
            try d.start(.rules)
            let over = holdOutbox(d.outbox, for: 4)
            let test = try #require(d.raiseTestAlarm())
            #expect(waitUntil(3) { access(path, F_OK) == 0 }, "copied once the write hangs")
            #expect(try Self.takenIn(path, into: dir + "/look.sqlite").events.contains { $0.eventID == test })
            d.stop(.rules)
            over.wait()
            #expect(access(path, F_OK) != 0, "everything written at the stop: no copy left")

            // A run killed during a hang left a copy: the next start takes it in.
            let alarm = event(.fallDetected), hang = EventID.v7(unixMilliseconds: wallNow().millisecondsSinceEpoch, using: &rng)
            try Self.copy(at: path).write([Self.with(alarm, seq: 900_000)], ruleState: nil, hang: hang, floor: 1_000_000)
            let again = try buttonHub(dir, outbox: dir + "/outbox.sqlite", socket: socket)
            #expect(access(path, F_OK) != 0, "taken in and removed")
            let stored = try again.outbox.with { try $0.fetch(where: "1", [], limit: 100) }
            #expect(stored.contains { $0.eventID == alarm.eventID && $0.seq == 900_000 })
            let cleared = stored.filter { $0.type == EventType.outboxWriteFailed.rawValue }.map { String(decoding: $0.payload, as: UTF8.self) }
            #expect(cleared.contains { $0.contains(hang.description) && $0.contains("\"cleared\"") }, "\(cleared)")
            #expect(try again.outbox.with { $0.seqs.peek } > 900_000, "new events' seqs above the copy's")
        }
    }
}
