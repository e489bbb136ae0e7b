import Foundation
@testable import Agent
@testable import Outbox
import Testing
import TestSupport
import VaktpostCore

/// The receivers' readers never wait for the outbox: what they hear is stamped when it arrives.
@Suite(.serialized) struct IntakeTests {
    /// A button pressed three times, 1.2 s apart, while a commit waits 3 s for the disk (an SD
    /// card stalling its sync). Each press is its own alarm. When the reader itself waited for
    /// the commit, the two later presses were read together after it, with one time: the third
    /// looked like a repeater's copy of the second (same telegram within a second) and was dropped.
    @Test func pressesHeardWhileTheDiskStallsAreEachAnAlarm() throws {
        try withTemporaryDirectory { dir in
            var master: Int32 = 0, slave: Int32 = 0
            try #require(openpty(&master, &slave, nil, nil, nil) == 0)
            defer { close(master) }
            let port = String(cString: ttyname(slave))
            close(slave)
            let d = try buttonHub(dir, outbox: dir + "/outbox.sqlite", socket: dir + "/ctl.sock", serial: port)
            try d.start()
            defer { d.stop() }
            // The receiver asks for its version twice, 500 ms each, and then listens.
            Thread.sleep(forTimeInterval: 1.5)
            func send(_ data: UInt8) {
                let bytes = ESP3Packet(type: 1, data: [0xF6, data, 0x00, 0xAB, 0x00, 0x01, 0x30], optional: [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 60, 0x00]).bytes
                _ = bytes.withUnsafeBytes { Glibc.write(master, $0.baseAddress, $0.count) }
            }
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
}
