import Foundation
import Logging
import Synchronization
@testable import Agent
@testable import Outbox
import Testing
import TestSupport
import VaktpostCore

/// The receivers' readers never wait for the outbox: what they hear is stamped when it arrives.
@Suite(.serialized) struct IntakeTests {
    /// A button hub whose USB300 is a pty (its master side in `master`).
    func ptyButtonHub(_ dir: String, master: inout Int32) throws -> HubDaemon {
        var slave: Int32 = 0
        try #require(openpty(&master, &slave, nil, nil, nil) == 0)
        let port = String(cString: ttyname(slave))
        close(slave)
        return try buttonHub(dir, outbox: dir + "/outbox.sqlite", socket: dir + "/ctl.sock", serial: port)
    }

    /// The button's telegram (0x50 pressed, 0x00 released) as the stick sends it.
    func send(_ data: UInt8, to master: Int32, status: UInt8? = nil) {
        let bytes = ESP3Packet(type: 1, data: [0xF6, data, 0x00, 0xAB, 0x00, 0x01, status ?? (data == 0 ? 0x20 : 0x30)],
                               optional: [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 60, 0x00]).bytes
        _ = bytes.withUnsafeBytes { Glibc.write(master, $0.baseAddress, $0.count) }
    }

    /// A button pressed three times, 1.2 s apart, while a commit waits 3 s for the disk (an SD
    /// card stalling its sync). Each press is its own alarm. When the reader itself waited for
    /// the commit, the two later presses were read together after it, with one time: the third
    /// looked like a repeater's copy of the second (same telegram within a second) and was dropped.
    @Test func pressesHeardWhileTheDiskStallsAreEachAnAlarm() throws {
        try withTemporaryDirectory { dir in
            var master: Int32 = -1
            defer { close(master) }
            let d = try ptyButtonHub(dir, master: &master)
            try d.start()
            defer { d.stop() }
            // The receiver asks for its version twice, 500 ms each, and then listens.
            Thread.sleep(forTimeInterval: 1.5)
            func send(_ data: UInt8) { self.send(data, to: master) }
            let stall = Thread { try? d.outbox.with { _ in Thread.sleep(forTimeInterval: 3) } }
            stall.start()
            Thread.sleep(forTimeInterval: 0.1)
            for i in 0..<3 {
                if i > 0 { Thread.sleep(forTimeInterval: 1.2) }
                send(0x50)  // pressed
                Thread.sleep(forTimeInterval: 0.05)
                send(0x00)  // released
            }
            let pressed = { try d.outbox.with { try $0.fetch(where: "type = 'button.pressed'", [], limit: 10).count } }
            #expect(try waitUntil(5) { try pressed() == 3 })
            #expect(try pressed() == 3)
        }
    }

    /// A button pressed twice while the agent starts (opening and checking a large outbox takes
    /// seconds, and a card that hangs 10): the port was opened first, so the kernel kept the
    /// telegrams, and each press is an alarm. Read together, the two presses have one time;
    /// when the time alone told a copy, the second looked like a repeater's copy of the first
    /// and was dropped. A repeater's copy of the second is still one.
    @Test func pressesWhileTheAgentStartsAreEachAnAlarm() throws {
        try withTemporaryDirectory { dir in
            var master: Int32 = -1
            defer { close(master) }
            let d = try ptyButtonHub(dir, master: &master)
            for _ in 0..<2 {  // pressed, released, twice: before anything reads the port
                send(0x50, to: master)
                send(0x00, to: master)
            }
            send(0x50, to: master, status: 0x31)  // the second press through a repeater
            Thread.sleep(forTimeInterval: 0.3)
            try d.start()
            defer { d.stop() }
            let pressed = { try d.outbox.with { try $0.fetch(where: "type = 'button.pressed'", [], limit: 10).count } }
            #expect(try waitUntil(5) { try pressed() == 2 })
            Thread.sleep(forTimeInterval: 0.3)
            #expect(try pressed() == 2, "the repeater's copy is no press of its own")
        }
    }

    /// Out of bed at night; back in bed at 29 minutes, but that reading waits in the intake
    /// (the rules are held up behind a commit the disk stalls). The 30-minute timer must not
    /// run past it: no `bed.not_returned`, ever. Simulated time, 10 minutes a second.
    @Test func aTimerDoesNotOvertakeAReadingHeardBeforeItWasDue() throws {
        try withTemporaryDirectory { dir in
            let options = RunOptions(configPath: try writeBedHubConfig(dir), socketPath: dir + "/ctl.sock", auditLog: dir + "/audit.log",
                                     start: WallTime(nanosecondsSinceEpoch: 1_795_000_000 * 1_000_000_000), speed: 600)
            let d = try HubDaemon(options: options, logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
            try d.start(.rules)
            defer { d.stop(.rules) }
            let bed = bedPad
            d.heardSerial(bed(true), at: d.clock.now(), receiver: "usb300")
            d.heardSerial(bed(false), at: d.clock.now(), receiver: "usb300")  // out of bed: 30 minutes start
            let out = d.clock.now()
            while d.clock.now() < out + .seconds(29 * 60) { usleep(5_000) }
            let back = d.clock.now()
            d.intake.put(heard: back, from: "enocean bed") { d.heardSerial(bed(true), at: back, receiver: "usb300") }
            let notReturned = { d.core.withLock { $0.recent.contains { $0.json["type"]?.stringValue == "bed.not_returned" } } }
            Thread.sleep(forTimeInterval: 0.5)  // 35 minutes out, had the timer run on
            #expect(!notReturned(), "the timer ran past a reading heard before it was due")
            d.intake.start { _ in }
            defer { d.intake.stop() }
            Thread.sleep(forTimeInterval: 0.5)
            #expect(d.intake.oldestWaiting == nil)
            #expect(!notReturned())
        }
    }

    /// Full, the queue drops its oldest and says how many; the rest is taken in, in order, and
    /// the rules' horizon is the oldest still waiting.
    @Test func aFullIntakeDropsTheOldestAndSaysSo() throws {
        let intake = Intake(label: "test.intake", limit: 5)
        let taken = Mutex<[Int]>([]), dropped = Mutex(0)
        let t0 = WallTime(nanosecondsSinceEpoch: 1_795_000_000 * 1_000_000_000)
        for i in 0..<12 { intake.put(heard: t0 + .seconds(Int64(i)), from: "pad") { taken.withLock { $0.append(i) } } }
        #expect(intake.oldestWaiting == t0 + .seconds(7))
        intake.start { n in dropped.withLock { $0 += n } }
        intake.stop()
        #expect(taken.withLock { $0 } == [7, 8, 9, 10, 11])
        #expect(dropped.withLock { $0 } == 7)
        #expect(intake.oldestWaiting == nil)
    }

    /// A sensor flooding while the rules are held up (a stalled disk) fills the queue with its
    /// own readings: they go, not the fall alarm heard just before the flood began. Dropping the
    /// oldest of all lost it.
    @Test func aFullIntakeDropsFromTheSenderThatFillsIt() throws {
        let intake = Intake(label: "test.intake", limit: 5)
        let taken = Mutex<[String]>([]), dropped = Mutex(0)
        let t0 = WallTime(nanosecondsSinceEpoch: 1_795_000_000 * 1_000_000_000)
        intake.put(heard: t0, from: "enocean fall") { taken.withLock { $0.append("fall") } }
        intake.put(heard: t0 + .milliseconds(1), from: "condition") { taken.withLock { $0.append("unplugged") } }
        for i in 0..<30 { intake.put(heard: t0 + .milliseconds(Int64(2 + i)), from: "enocean stuck") { taken.withLock { $0.append("stuck \(i)") } } }
        #expect(intake.oldestWaiting == t0, "the fall alarm is the oldest still waiting")
        intake.start { n in dropped.withLock { $0 += n } }
        intake.stop()
        #expect(taken.withLock { $0 } == ["fall", "unplugged", "stuck 27", "stuck 28", "stuck 29"])
        #expect(dropped.withLock { $0 } == 27)
    }

    /// Under a long flood the dropped readings' places are reclaimed: the queue's storage stays
    /// in proportion to its limit, and what is taken in is the newest of the flood, in order.
    @Test func aLongFloodKeepsTheQueueBounded() throws {
        let intake = Intake(label: "test.intake", limit: 100)
        let taken = Mutex<[Int]>([])
        let t0 = WallTime(nanosecondsSinceEpoch: 1_795_000_000 * 1_000_000_000)
        intake.put(heard: t0, from: "enocean fall") { taken.withLock { $0.append(-1) } }
        for i in 0..<100_000 {
            intake.put(heard: t0 + .milliseconds(Int64(1 + i)), from: "enocean stuck") { taken.withLock { $0.append(i) } }
            if i % 1000 == 0 { #expect(intake.queue.withLock { $0.items.count } <= 400) }
        }
        intake.start { _ in }
        intake.stop()
        #expect(taken.withLock { $0 } == [-1] + Array(99_901..<100_000))
    }
}
