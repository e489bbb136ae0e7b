import Dispatch
import Foundation
@testable import Agent
@testable import Outbox
import Synchronization
import Testing
import TestSupport
import Uplink
import VaktpostCore
import VaktpostPosix

/// Holds the outbox for `seconds` on another thread, as a write that hangs would; returns once
/// it is held, with what is signalled when it is let go.
func holdOutbox(_ outbox: LockedOutbox, for seconds: Double) -> DispatchSemaphore {
    let held = DispatchSemaphore(value: 0), over = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
        try? outbox.with { _ in
            held.signal()
            usleep(UInt32(seconds * 1_000_000))
        }
        over.signal()
    }
    held.wait()
    return over
}

/// Runs `body` with `lanes` delivering and the writer of `locked` waking them after each write,
/// as the daemon has them; stops both after.
func whileDelivering<T>(_ lanes: DeliveryLanes, _ locked: LockedOutbox, _ body: () throws -> T) rethrows -> T {
    locked.startWriter { lanes.wake() }
    lanes.start()
    defer {
        lanes.stop()
        locked.stopWriter()
    }
    return try body()
}

/// A write of the outbox that hangs (a card busy in its firmware) must hold up neither the rules
/// nor the alarms. A write that hangs is made here by holding the outbox's lock, which is exactly
/// what the writer meets when the write before it sits in `pwrite`.
@Suite(.serialized) struct HangingWriteTests {
    var rng = SplitMix64(seed: 23)

    mutating func event(_ type: EventType, _ state: EventState = .active, sensor: String = "bed") -> Event {
        var e = DeliveryLanesTests.event(type, state, using: &rng)
        e.sensor = SensorID(sensor)
        return e
    }

    func hang(_ outbox: LockedOutbox, for seconds: Double) -> DispatchSemaphore { holdOutbox(outbox, for: seconds) }

    func deliveryLanes(_ outbox: LockedOutbox, _ stub: ReceiverProcess, idle: Duration = .milliseconds(100),
                       alarmBackoff: Backoff = Backoff(base: .milliseconds(50), cap: .milliseconds(200))) -> DeliveryLanes {
        let settings = UplinkSettings(baseURL: stub.url, hubID: "hub-0001", tls: stub.tls(), alarmBackoff: alarmBackoff,
                                      idle: idle, alarmsFirstGrace: .seconds(3))
        return DeliveryLanes(settings: settings, outbox: outbox, bootID: "b", now: wallNow) { _ in }
    }

    func outbox(_ dir: String, bound: Int = 1000, readHangs: ReadHangs? = nil) throws -> LockedOutbox {
        let box = try Outbox(path: dir + "/outbox.sqlite", now: wallNow, makeEvent: { _, _, _, _ in fatalError("no outbox events expected") })
        guard let readHangs else { return LockedOutbox(box, bound: bound) }
        return LockedOutbox(box, bound: bound, refused: { _, _ in }) { outbox, skipping in
            readHangs.hangIfAsked()
            return try outbox.queuedAlarms(skipping: skipping, limit: 32)
        }
    }

    /// Makes the alarm lane's next read hang, as a read of a page SQLite no longer caches would
    /// on a card busy in its firmware (the thread in `pread`, holding the outbox).
    final class ReadHangs: Sendable {
        let seconds = Atomic<Int>(0)
        let hanging = Atomic<Bool>(false)
        var isHanging: Bool { hanging.load(ordering: .acquiring) }
        func hangIfAsked() {
            let seconds = seconds.exchange(0, ordering: .acquiringAndReleasing)
            guard seconds > 0 else { return }
            hanging.store(true, ordering: .releasing)
            sleep(UInt32(seconds))
            hanging.store(false, ordering: .releasing)
        }
    }

    @Test mutating func theRulesGoOnWhileAWriteHangs() throws {
        try withTemporaryDirectory { dir in
            let locked = try outbox(dir)
            locked.startWriter()
            defer { locked.stopWriter() }
            let first = [event(.bedState, .update)], second = [event(.fallDetected)]
            let over = hang(locked, for: 3)
            let clock = ContinuousClock()
            var took = clock.measure { #expect(locked.hand(first, ruleState: nil) == .behind) }
            #expect(took >= .milliseconds(200) && took < .milliseconds(800), "the rules wait a quarter second for a write, no longer")
            #expect(waitUntil(2) { locked.hangingFor != nil }, "a second on: the write hangs")
            took = clock.measure { #expect(locked.hand(second, ruleState: nil) == .behind) }
            #expect(took < .milliseconds(150), "a write known to hang is not waited for at all")
            #expect(locked.writeRunning != nil && locked.waitingForWrite == 2)
            took = clock.measure { locked.later { try? $0.setNote("last_alive", "now") } }
            #expect(took < .milliseconds(50), "housekeeping's writes do not wait for the disk")
            over.wait()
            #expect(waitUntil(3) { locked.waitingForWrite == 0 })
            // Stored in the order handed over; the alarm kept the seq it was stamped with.
            let stored = locked.takeStored()
            #expect(stored.map(\.eventID) == [first[0].eventID, second[0].eventID])
            #expect(stored.allSatisfy { $0.seq != nil })
            #expect(try locked.with { try $0.status().lanes[.alarm]?.depth } == 1)
            #expect(try locked.with { try $0.note("last_alive") } == "now", "and are done after the write")
            #expect(locked.hand([event(.bedState, .update)], ruleState: nil) == .stored, "a write that returns is waited for again")
        }
    }

    @Test mutating func anAlarmIsSentFromMemoryWhileItsWriteHangsAndNotSentAgain() throws {
        let stub = try ReceiverProcess()
        try withTemporaryDirectory { dir in
            let locked = try outbox(dir)
            let lanes = deliveryLanes(locked, stub)
            locked.startWriter()
            lanes.start()
            defer {
                lanes.stop()
                locked.stopWriter()
            }
            let alarm = event(.fallDetected)
            let over = hang(locked, for: 6)
            #expect(locked.hand([alarm], ruleState: nil) == .behind)
            lanes.wake()
            // Long before the write returns (6 s), the platform has the alarm.
            #expect(try waitUntil(3) { try stub.arrivedIDs() == [alarm.eventID.description] })
            #expect(locked.writeRunning != nil, "the write still hangs")
            over.wait()
            // Written, and settled with what the platform said: out of the queue, followed, not sent again.
            #expect(try waitUntil(3) { try locked.with { try $0.status().lanes[.alarm]?.depth } == 0 })
            #expect(try locked.with { try $0.followedAlarms().map(\.event.eventID) } == [alarm.eventID])
            Thread.sleep(forTimeInterval: 0.5)
            #expect(try stub.arrivals().duplicates == 0)
            #expect(try stub.arrivedIDs() == [alarm.eventID.description])
        }
    }

    /// A card that pauses a sync for its own garbage collection (up to a second, not a hang): an
    /// alarm handed over meanwhile goes from memory once the outbox has been busy 250 ms, before
    /// its write returns, and is not sent again after. The lane idles 5 s between looks here, so
    /// only the handover's own wake can make it look in time.
    @Test mutating func anAlarmWaitingForASlowWriteGoesFromMemoryBeforeTheWriteReturns() throws {
        let stub = try ReceiverProcess()
        try withTemporaryDirectory { dir in
            let locked = try outbox(dir)
            let lanes = deliveryLanes(locked, stub, idle: .seconds(5))
            try whileDelivering(lanes, locked) { () throws in
                Thread.sleep(forTimeInterval: 0.3)  // the lanes have looked once, and idle
                let alarm = event(.fallDetected)
                let over = hang(locked, for: 0.9)
                let handed = wallNow().millisecondsSinceEpoch
                #expect(locked.hand([alarm], ruleState: nil) == .behind, "the rules waited a quarter second, and went on")
                over.wait()
                let written = wallNow().millisecondsSinceEpoch  // the write goes as soon as the hold ends
                let arrived = try #require(try stub.arrivals().events.first?["receivedAtMs"] as? Int, "sent while the write was slow")
                #expect(Int64(arrived) < written, "sent \(Int64(arrived) - handed) ms after the handover, its write returned after \(written - handed) ms")
                #expect(Int64(arrived) - handed < 800)
                #expect(try waitUntil(3) { try locked.with { try $0.status().lanes[.alarm]?.depth } == 0 }, "settled once written")
                Thread.sleep(forTimeInterval: 0.5)
                #expect(try stub.arrivedIDs() == [alarm.eventID.description] && stub.arrivals().duplicates == 0, "sent once")
            }
        }
    }

    /// A fall the platform keeps failing while it works, passed over, is the only alarm waiting:
    /// the lane tries it again after its backoff (here up to 60 s, jittered), and meanwhile looks
    /// for another alarm each time one is stored or handed over. One handed over while a write
    /// hangs is in no read of the outbox: it goes from memory at once, not when the hang or the
    /// backoff ends.
    @Test mutating func anAlarmHandedOverDuringAHangWhileOnePassedOverBacksOffGoesAtOnce() throws {
        try bedAlarmWhileOnePassedOverBacksOff(handed: .behind, "the write hangs 3 s") { locked in
            let over = holdOutbox(locked, for: 3)
            return { over.wait() }
        }
    }

    /// The same wait, when the look that the alarm's write wakes finds its read slow (a page
    /// read from a busy card, holding the outbox 2 s): it looks again shortly, not only at the
    /// next wake, which may never come, and the alarm goes from memory once the read has held
    /// the outbox 250 ms.
    @Test mutating func aLookWhoseReadIsSlowIsMadeAgainWhileOnePassedOverBacksOff() throws {
        let readHangs = ReadHangs()
        try bedAlarmWhileOnePassedOverBacksOff(readHangs: readHangs, handed: .stored, "written at once, the look it wakes reads for 2 s") { _ in
            readHangs.seconds.store(2, ordering: .releasing)
            return { _ = waitUntil(3) { !readHangs.isHanging } }
        }
    }

    /// A fall passed over (above), then twice: `trouble` begins (it returns what waits it out),
    /// a bed alarm is handed over (`hand` answering `handed`), and must arrive within 1.5 s.
    /// Twice, so that a backoff that happens to end within the wait cannot pass for it.
    mutating func bedAlarmWhileOnePassedOverBacksOff(readHangs: ReadHangs? = nil, handed: LockedOutbox.Handed, _ what: String,
                                                    trouble: (LockedOutbox) -> () -> Void) throws {
        let stub = try ReceiverProcess()
        try stub.faults(["breakOnType": "fall.detected"])
        try withTemporaryDirectory { dir in
            let locked = try outbox(dir, readHangs: readHangs)
            let lanes = deliveryLanes(locked, stub, alarmBackoff: Backoff(base: .seconds(60), cap: .seconds(60)))
            try whileDelivering(lanes, locked) { () throws in
                #expect(locked.hand([event(.fallDetected)], ruleState: nil) == .stored)
                // The platform seen to work (a heartbeat, say), each cutting the backoff short,
                // until the fall is passed over.
                #expect(waitUntil(20) {
                    lanes.platformIsBack()
                    return (DeliveryLanesTests.broken(stub) ?? 0) >= AlarmTurns.patience
                })
                for _ in 0..<2 {
                    Thread.sleep(forTimeInterval: 0.3)  // the fall's try alone failed; its backoff runs
                    let bed = event(.bedNotReturned)
                    let over = trouble(locked)
                    let sent = wallNow().millisecondsSinceEpoch
                    #expect(locked.hand([bed], ruleState: nil) == handed)
                    #expect(try waitUntil(4) { try stub.arrivedIDs().contains(bed.eventID.description) }, "the bed alarm arrived")
                    let arrival = try stub.arrivals().events.first { $0["eventId"] as? String == bed.eventID.description }
                    let arrived = try #require(arrival?["receivedAtMs"] as? Int)
                    #expect(Int64(arrived) - sent < 1500, "sent \(Int64(arrived) - sent) ms after the handover: \(what)")
                    over()
                }
            }
        }
    }

    /// The watch beside a try the platform hangs on looks for the alarm behind it once the
    /// heartbeat sent half an attempt in is answered. A read that does not answer in time (held
    /// 2 s here) makes it look again shortly, not only at the next wake: the try is given up
    /// for the bed alarm then, from memory, not at the attempt's end.
    @Test mutating func theWatchBesideATryLooksAgainWhenItsReadIsSlow() throws {
        let stub = try ReceiverProcess()
        try stub.faults(["hangOnType": "fall.detected"])
        let readHangs = ReadHangs()
        try withTemporaryDirectory { dir in
            let locked = try outbox(dir, readHangs: readHangs)
            final class Heartbeat: Sendable { let lanes = Mutex<DeliveryLanes?>(nil) }
            let heartbeat = Heartbeat()
            // An attempt of 8 s, its half 4 s; the boot clock 5 % slow against the probe's, as in
            // DeliveryLanesTests, so that the heartbeat counts.
            let begun = SystemClock.boottime()
            let slow: @Sendable () -> UInt64 = { begun + (SystemClock.boottime() - begun) / 20 * 19 }
            var tls = stub.tls()
            tls.totalTimeout = .seconds(8)
            let settings = UplinkSettings(baseURL: stub.url, hubID: "hub-0001", tls: tls, alarmBackoff: Backoff(base: .milliseconds(50), cap: .milliseconds(200)),
                                          idle: .milliseconds(100), alarmsFirstGrace: .seconds(3))
            let lanes = DeliveryLanes(settings: settings, outbox: locked, bootID: "b", now: wallNow, boottime: slow,
                                      probe: { heartbeat.lanes.withLock { $0 }?.platformIsBack() }) { _ in }
            heartbeat.lanes.withLock { $0 = lanes }
            try whileDelivering(lanes, locked) { () throws in
                #expect(locked.hand([event(.fallDetected)], ruleState: nil) == .stored)
                #expect(waitUntil(5) { (DeliveryLanesTests.broken(stub) ?? 0) >= 1 })
                let clock = ContinuousClock()
                let stored = clock.now
                let bed = event(.bedNotReturned)
                readHangs.seconds.store(2, ordering: .releasing)  // the watch's read, at the half
                #expect(locked.hand([bed], ruleState: nil) == .stored)
                #expect(try waitUntil(12) { try stub.arrivedIDs().contains(bed.eventID.description) })
                let waited = clock.now - stored
                #expect(waited < .seconds(6.5), "the bed alarm waited \(waited): the watch did not look again after its slow read")
                #expect(waitUntil(3) { !readHangs.isHanging })
            }
        }
    }

    /// A read of the alarm lane's that found the outbox busy, left by a look that stopped waiting
    /// for it, is not the answer once the write is over: the next look reads afresh and finds the
    /// alarm written since (taken, the lane would wait for its next wake with the alarm unseen).
    @Test mutating func aReadThatFoundTheOutboxBusyIsNotTheAnswerOnceTheWriteIsOver() throws {
        try withTemporaryDirectory { dir in
            let locked = try outbox(dir)
            let over = hang(locked, for: 1)
            // Looks that stop waiting as soon as their read does, until one leaves its read behind.
            var left = false
            for _ in 0..<40 where !left {
                #expect(try locked.nextAlarm(within: .milliseconds(20)) == nil, "the outbox is busy")
                left = locked.alarmReadPending
            }
            try #require(left, "a read left behind")
            over.wait()
            let alarm = event(.fallDetected)
            try locked.with { try $0.append([alarm]) }
            let next = try locked.nextAlarm(within: .milliseconds(500))
            #expect(next??.eventID == alarm.eventID)
        }
    }

    /// The same for a read that took long (a page not cached, read from a busy card) and found
    /// the queue as it was: an alarm the writer wrote after it is not missed.
    @Test mutating func aSlowReadLeftBehindDoesNotHideAnAlarmWrittenAfterIt() throws {
        let readHangs = ReadHangs()
        try withTemporaryDirectory { dir in
            let locked = try outbox(dir, readHangs: readHangs)
            locked.startWriter()
            defer { locked.stopWriter() }
            readHangs.seconds.store(1, ordering: .releasing)
            #expect(try locked.nextAlarm(within: .milliseconds(100)) == nil, "the read takes a second")
            #expect(locked.alarmReadPending)
            let alarm = event(.fallDetected)
            #expect(locked.hand([alarm], ruleState: nil) == .behind, "written once the read is done")
            #expect(waitUntil(5) { locked.handover.withLock { $0.alarmsWritten } == 1 })
            let next = try locked.nextAlarm(within: .milliseconds(500))
            #expect(next??.eventID == alarm.eventID)
        }
    }

    /// Whoever's write hangs (the bulk lane's, the follower's, the writer's), the alarms already
    /// written and those waiting for the disk go out: the alarm lane writes nothing itself, and
    /// sends from memory what it read last and what was written or handed over since.
    @Test mutating func alarmsGoOutWhileAnotherThreadsWriteHangsAndAreSettledOnceItReturns() throws {
        try alarmsGoOutWhileTheOutboxIsStuck(in: .anotherThreadsWrite)
    }

    /// The alarm lane's own read can hang too. The lane does not sit in it: once the outbox has
    /// been busy a second, it sends from memory what it read last and what waits for the disk.
    @Test mutating func alarmsGoOutWhileTheAlarmLanesOwnReadHangs() throws {
        try alarmsGoOutWhileTheOutboxIsStuck(in: .theAlarmLanesRead)
    }

    enum Stuck { case anotherThreadsWrite, theAlarmLanesRead }

    /// An alarm written before the outbox is stuck for 10 s and one handed over during it reach
    /// the platform long before, the fall first, and once each: what the platform said is
    /// settled by the writer once the outbox is free.
    mutating func alarmsGoOutWhileTheOutboxIsStuck(in stuck: Stuck) throws {
        let stub = try ReceiverProcess()
        let readHangs = ReadHangs()
        try withTemporaryDirectory { dir in
            let locked = try outbox(dir, readHangs: readHangs)
            let lanes = deliveryLanes(locked, stub)
            locked.startWriter()
            defer {
                lanes.stop()
                locked.stopWriter()
            }
            // Written before the hang, not sent yet (the lanes are not running).
            let written = event(.bedNotReturned)
            #expect(locked.hand([written], ruleState: nil) != .refused)
            #expect(waitUntil(5) { locked.waitingForWrite == 0 })
            var over: DispatchSemaphore? = nil
            switch stuck {
            case .anotherThreadsWrite:
                over = hang(locked, for: 10)  // a write of another thread, sitting in pwrite
                lanes.start()
            case .theAlarmLanesRead:
                readHangs.seconds.store(10, ordering: .releasing)
                lanes.start()  // its first read hangs, in pread
                #expect(waitUntil(2) { readHangs.isHanging })
            }
            let fall = event(.fallDetected)
            #expect(locked.hand([fall], ruleState: nil) == .behind)
            lanes.wake()
            // Long before the outbox is free (10 s), the platform has both, the fall first (here
            // within about a second; the margin is for a machine loaded by the other suites).
            #expect(try waitUntil(7) { try stub.arrivedIDs().count == 2 })
            #expect(try stub.arrivedIDs() == [fall.eventID.description, written.eventID.description],
                    "fall \(fall.eventID), written \(written.eventID), hung \(String(describing: locked.writeRunning))")
            #expect(locked.writeRunning != nil, "the write still hangs")
            over?.wait()
            // Settled by the writer with what the platform said: out of the queue, not sent again.
            // (A read that hung answers out of date, with the alarm sent meanwhile: not used.)
            #expect(try waitUntil(8) { try locked.with { try $0.status().lanes[.alarm]?.depth } == 0 })
            #expect(try Set(locked.with { try $0.followedAlarms().map(\.event.eventID) }) == [fall.eventID, written.eventID])
            Thread.sleep(forTimeInterval: 0.5)
            #expect(try stub.arrivals().duplicates == 0)
            #expect(try stub.arrivedIDs().count == 2)
        }
    }

    /// How long the outbox has been busy, for the stop's requests to systemd: from a second on,
    /// whoever holds it (here not the writer: a lane's write, say).
    /// The busy clock is read as of a moment taken before the handover's lock: a write, or a hold
    /// of the outbox's lock, that begins in between is later than that moment. It is no hang
    /// (wrapped around, it was one of 584 years, and `hangingFor` trapped: the agent died).
    @Test func aHoldBegunAfterTheMomentReadIsNoHang() throws {
        try withTemporaryDirectory { dir in
            let locked = try outbox(dir)
            let later = SystemClock.boottime() + 1_000_000_000
            locked.heldSince.store(later, ordering: .relaxed)
            locked.handover.withLock { $0.writingSince = later }
            #expect(locked.hangingFor == nil)
            #expect(locked.alarmToExpress() == nil)
            #expect(!locked.handover.withLock { $0.hung(at: later - 1) })
            locked.heldSince.store(0, ordering: .relaxed)
            locked.handover.withLock { $0.writingSince = nil }
        }
    }

    @Test func theOutboxSaysHowLongItHasBeenBusyOnceItHangs() throws {
        try withTemporaryDirectory { dir in
            let locked = try outbox(dir)
            #expect(locked.hangingFor == nil)
            let over = hang(locked, for: 2.5)
            #expect(locked.hangingFor == nil, "not yet a second")
            Thread.sleep(forTimeInterval: 1.3)
            #expect(try #require(locked.hangingFor) >= .seconds(1))
            over.wait()
            #expect(locked.hangingFor == nil)
        }
    }

    /// The agent stopped while a write hangs (systemctl restart, an upgrade): the stop waits
    /// for the write, asking systemd for time and saying so (`StopDuringHang`), stores what
    /// waited for it, and clears the hang it reported, which the rules' loop, stopped first, no
    /// longer can.
    @Test func aStopWaitsForAWriteThatHangsAndClearsItsReport() throws {
        try withTemporaryDirectory { dir in
            let journal = Journal()
            let d = try buttonHub(dir, outbox: dir + "/outbox.sqlite", socket: dir + "/ctl.sock", logger: journal.logger)
            try d.start(.rules)
            let over = holdOutbox(d.outbox, for: 8)
            let test = try #require(d.raiseTestAlarm())  // the writer takes it, and waits
            #expect(waitUntil(8) { d.core.withLock { $0.hanging } != nil }, "reported after 5 s")
            let clock = ContinuousClock()
            let took = clock.measure { d.stop(.rules) }
            over.wait()
            #expect(took >= .seconds(1), "the stop waited for the write")
            #expect(journal.text.contains("the stop waits for a write of the outbox"), "\(journal.text)")
            let again = try buttonHub(dir, outbox: dir + "/outbox.sqlite", socket: dir + "/ctl.sock")
            let stored = try again.outbox.with { try $0.fetch(where: "1", [], limit: 100) }
            #expect(stored.contains { $0.eventID == test })
            let hang = stored.filter { $0.type == EventType.outboxWriteFailed.rawValue }
            #expect(hang.count == 2, "raised and cleared: \(hang.map { String(decoding: $0.payload, as: UTF8.self) })")
        }
    }

    /// A config pushed while a write hangs: the stop would wait for the write, the agent deaf
    /// meanwhile, so the restart onto it waits for the write, the agent supervising on the old one.
    @Test func aConfigPushedWhileAWriteHangsRestartsOnceTheOutboxWrites() throws {
        try withTemporaryDirectory { dir in
            let d = try buttonHub(dir, outbox: dir + "/outbox.sqlite", socket: dir + "/ctl.sock")
            try d.start(.rules)
            defer { d.stop(.rules) }
            let over = holdOutbox(d.outbox, for: 3)
            _ = d.raiseTestAlarm()  // the writer takes it, and waits
            #expect(waitUntil(3) { d.outbox.hangingFor != nil })
            let pushed = try String(contentsOfFile: dir + "/vaktpost.toml", encoding: .utf8) + "\n# pushed\n"
            #expect(d.applyConfig(pushed, version: "\"2\"") == nil, "accepted")
            #expect(try String(contentsOfFile: dir + "/vaktpost.toml", encoding: .utf8) == pushed, "and in place")
            #expect(!d.restartRequested, "no restart while the write hangs")
            over.wait()
            #expect(waitUntil(3) { d.restartRequested }, "once it has returned")
        }
    }

    @Test mutating func aFloodWaitingForAHangingWriteLosesItsOwnStatesAndNoAlarm() throws {
        try withTemporaryDirectory { dir in
            let locked = try outbox(dir, bound: 100)
            locked.startWriter()
            defer { locked.stopWriter() }
            let over = hang(locked, for: 2)
            let door = event(.doorState, .update, sensor: "door")
            #expect(locked.hand([door], ruleState: nil) == .behind)
            var alarms: [EventID] = []
            for i in 0..<500 {
                var handed = [event(.bedState, .update, sensor: "flood")]
                if i % 100 == 50 {
                    handed.append(event(.fallDetected, sensor: "pendant"))
                    alarms.append(handed.last!.eventID)
                }
                #expect(locked.hand(handed, ruleState: nil) != .refused)
                #expect(locked.waitingForWrite <= 100)
            }
            #expect(locked.takeDropped() >= 400)
            over.wait()
            #expect(waitUntil(3) { locked.waitingForWrite == 0 })
            let stored = Set(locked.takeStored().map(\.eventID))
            #expect(stored.contains(door.eventID), "the quiet sensor's state is kept")
            #expect(alarms.allSatisfy(stored.contains), "no alarm is dropped")
        }
    }

    @Test mutating func alarmsPastTheBoundAreRefusedNotDropped() throws {
        try withTemporaryDirectory { dir in
            let locked = try outbox(dir, bound: 3)
            locked.startWriter()
            defer { locked.stopWriter() }
            let over = hang(locked, for: 2)
            for _ in 0..<3 { #expect(locked.hand([event(.fallDetected)], ruleState: nil) == .behind) }
            #expect(locked.hand([event(.fallDetected)], ruleState: nil) == .refused)
            over.wait()
        }
    }
}
