#if canImport(Glibc)
import Glibc
#endif
import SerialInput
import Synchronization
import Testing
import VaktpostCore
import VaktpostPosix

func nowWall() -> WallTime {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return WallTime(secondsSinceEpoch: Int64(ts.tv_sec), nanoseconds: Int64(ts.tv_nsec))
}

/// A pseudo-terminal standing in for a USB receiver: the test holds the master side.
final class FakeReceiver {
    let master: Int32
    let slavePath: String

    init() {
        var m: Int32 = 0, s: Int32 = 0
        precondition(openpty(&m, &s, nil, nil, nil) == 0)
        master = m
        slavePath = String(cString: ttyname(s))
        close(s)  // the agent opens the slave by its path, as it would a real port
        _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
    }

    func write(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.write(master, $0.baseAddress, $0.count) }
            if n > 0 { off += n } else { usleep(1000) }
        }
    }

    /// Reads what the agent sent, for up to `seconds`.
    func read(for seconds: Double) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        let end = nowWall() + .milliseconds(Int64(seconds * 1000))
        while nowWall() < end {
            let n = Glibc.read(master, &buffer, buffer.count)
            if n > 0 { out += buffer[0..<n] } else { usleep(5000) }
        }
        return out
    }

    /// Answers CO_RD_VERSION and CO_RD_IDBASE the way a USB300 does; `heard`, if given, is
    /// written in the same write after each answer (a telegram the stick heard meanwhile).
    func answerBringUp(heard: [UInt8] = []) {
        var framer = ESP3Framer()
        var answered = 0
        let end = nowWall() + .seconds(3)
        var buffer = [UInt8](repeating: 0, count: 256)
        while answered < 2 && nowWall() < end {
            let n = Glibc.read(master, &buffer, buffer.count)
            guard n > 0 else { usleep(2000); continue }
            for packet in framer.feed(buffer[0..<n]) where packet.type == ESP3Packet.commonCommand {
                if packet.data == [0x03] {
                    let description = Array("GATEWAYCTRL".utf8) + [UInt8](repeating: 0, count: 5)
                    write(ESP3Packet(type: ESP3Packet.response, data: [0, 2, 11, 1, 0, 2, 6, 0, 1, 0xFF, 0x87, 0xCA, 0x00, 0x45, 0x4F, 0x01, 0x03] + description, optional: []).bytes + heard)
                } else if packet.data == [0x08] {
                    write(ESP3Packet(type: ESP3Packet.response, data: [0, 0xFF, 0x87, 0xCA, 0x00], optional: [0x0A]).bytes + heard)
                }
                answered += 1
            }
        }
    }

    func hangUp() { close(master) }
}

final class Collected: Sendable {
    let telegrams = Mutex<[ESP3Telegram]>([])
    let conditions = Mutex<[SerialReceiver.Condition]>([])

    func waitFor(_ what: String, seconds: Double, _ done: () -> Bool) -> Bool {
        let end = nowWall() + .milliseconds(Int64(seconds * 1000))
        while nowWall() < end {
            if done() { return true }
            usleep(10_000)
        }
        return done()
    }
}

func esp3Vectors() throws -> [(name: String, bytes: [UInt8], senders: Int)] {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    let text = String(decoding: try Files.read(parts.joined(separator: "/") + "/../shared/testdata/esp3_vectors.json"), as: UTF8.self)
    guard case .array(let items) = try JSONValue.parse(text) else { return [] }
    return items.map { v in
        var framer = ESP3Framer()
        let bytes = Hex.bytes(v["hex"]!.stringValue!)!
        return (v["name"]!.stringValue!, bytes, framer.feed(bytes).filter { $0.type == ESP3Packet.radioERP1 }.count)
    }
}

/// A receiver reading `path` (or `port`, opened before), started; what it reports is collected.
func startReceiver(_ name: String = "usb300", path: String, pingAfter: Duration = .seconds(60), port: SerialReceiver.OpenPort? = nil) -> (SerialReceiver, Collected) {
    let c = Collected()
    let r = SerialReceiver(
        options: .init(name: name, path: path, match: nil, pingAfter: pingAfter), port: port, now: nowWall,
        onTelegram: { t, _ in c.telegrams.withLock { $0.append(t) } }, onCondition: { x in c.conditions.withLock { $0.append(x) } })
    r.start()
    return (r, c)
}

@Suite(.serialized) struct SerialReceiverTests {
    func start(path: String, pingAfter: Duration = .seconds(60), port: SerialReceiver.OpenPort? = nil) -> (SerialReceiver, Collected) {
        startReceiver(path: path, pingAfter: pingAfter, port: port)
    }

    /// Every shared vector through a real pty, whole, byte by byte and in random chunks, with
    /// the bring-up answered as a USB300 would.
    @Test(arguments: ["whole", "bytes", "chunks"])
    func vectorsThroughAPty(mode: String) throws {
        let vectors = try esp3Vectors()
        #expect(vectors.count >= 24)
        let fake = FakeReceiver()
        defer { fake.hangUp() }
        let (receiver, c) = start(path: fake.slavePath)
        defer { receiver.stop() }
        fake.answerBringUp()
        #expect(c.waitFor("available", seconds: 3) { c.conditions.withLock { $0.contains { if case .available = $0 { return true } else { return false } } } })
        guard case .available(_, let version, let baseID)? = c.conditions.withLock({ $0.first }) else { Issue.record("not available"); return }
        #expect(version == "GATEWAYCTRL app 2.11.1.0")
        #expect(baseID == "FF87CA00")
        var rng = SplitMix64(seed: 7)
        var expected = 0
        for v in vectors {
            expected += v.senders
            switch mode {
            case "whole": fake.write(v.bytes)
            case "bytes": for b in v.bytes { fake.write([b]) }
            default:
                var i = 0
                while i < v.bytes.count {
                    let n = Int.random(in: 1...5, using: &rng)
                    fake.write(Array(v.bytes[i..<min(v.bytes.count, i + n)]))
                    i += n
                    if Bool.random(using: &rng) { usleep(2000) }
                }
            }
            usleep(150_000)  // past the 100 ms idle timeout: a rejected vector's leftovers are gone before the next
        }
        #expect(c.waitFor("telegrams", seconds: 3) { c.telegrams.withLock { $0.count } >= expected })
        let got = c.telegrams.withLock { $0 }
        #expect(got.count == expected, "\(got.count) telegrams, expected \(expected)")
        #expect(got.contains { $0.senderID == "01825DAB" })
    }

    /// Closing the master side is what a USB unplug looks like to the reader. It is reported
    /// within 5 s, and when the stable symlink points at a port again, the receiver comes back.
    @Test func unplugIsReportedWithinFiveSecondsAndReopeningRecovers() throws {
        let dir = try Files.makeTemporaryDirectory(prefix: "vaktpost-serial")
        let link = dir + "/usb300"
        defer { Files.remove(link); Files.remove(dir) }
        let first = FakeReceiver()
        symlink(first.slavePath, link)
        let (receiver, c) = start(path: link)
        defer { receiver.stop() }
        first.answerBringUp()
        #expect(c.waitFor("available", seconds: 3) { c.conditions.withLock { $0.count } == 1 })
        let unpluggedAt = nowWall()
        first.hangUp()
        unlink(link)
        #expect(c.waitFor("unplugged", seconds: 5) { c.conditions.withLock { $0.count } >= 2 })
        #expect(nowWall() - unpluggedAt < .seconds(5))
        guard case .unplugged(let reason)? = c.conditions.withLock({ $0.dropFirst().first }) else { Issue.record("no unplug"); return }
        #expect(reason.contains("usb300"))
        let second = FakeReceiver()
        defer { second.hangUp() }
        symlink(second.slavePath, link)
        second.answerBringUp()
        #expect(c.waitFor("back", seconds: 10) { c.conditions.withLock { if case .available = $0.last { return true } else { return false } } })
        second.write(Hex.bytes("55000707017AD50901825DAB0001FFFFFFFF3600C7")!)
        #expect(c.waitFor("telegram", seconds: 3) { !c.telegrams.withLock { $0.isEmpty } })
    }

    /// A telegram that arrives in the same read as the answer to the bring-up's question (a
    /// button pressed as the agent starts) is handed on, not dropped with the rest of the read.
    @Test func aTelegramReadWithABringUpAnswerIsKept() throws {
        let fake = FakeReceiver()
        defer { fake.hangUp() }
        let (receiver, c) = start(path: fake.slavePath)
        defer { receiver.stop() }
        fake.answerBringUp(heard: Hex.bytes("55000707017AD50901825DAB0001FFFFFFFF3600C7")!)
        #expect(c.waitFor("telegrams", seconds: 3) { c.telegrams.withLock { $0.count } >= 2 })
        #expect(c.telegrams.withLock { $0.map(\.senderID) } == ["01825DAB", "01825DAB"])
    }

    /// The agent opens the port before its outbox (seconds with a large backlog): a telegram
    /// the stick sends meanwhile waits in the kernel and is read when the receiver starts.
    @Test func aTelegramSentBeforeTheReaderStartsIsHeardFromAPortOpenedEarly() throws {
        let fake = FakeReceiver()
        defer { fake.hangUp() }
        let port = try #require(SerialReceiver.openEarly(.init(name: "usb300", path: fake.slavePath, match: nil)))
        fake.write(Hex.bytes("55000707017AD50901825DAB0001FFFFFFFF3600C7")!)
        usleep(200_000)
        let (receiver, c) = start(path: fake.slavePath, port: port)
        defer { receiver.stop() }
        fake.answerBringUp()
        #expect(c.waitFor("telegram", seconds: 3) { !c.telegrams.withLock { $0.isEmpty } })
        #expect(c.telegrams.withLock { $0.map(\.senderID) } == ["01825DAB"])
    }

    /// A receiver that stops answering the liveness ping three times is reopened.
    @Test func aReceiverThatStopsAnsweringIsReopened() throws {
        let fake = FakeReceiver()
        defer { fake.hangUp() }
        let (receiver, c) = start(path: fake.slavePath, pingAfter: .milliseconds(200))
        defer { receiver.stop() }
        #expect(c.waitFor("gave up", seconds: 8) { c.conditions.withLock { $0.contains { if case .unplugged = $0 { return true } else { return false } } } })
        guard case .unplugged(let reason)? = c.conditions.withLock({ $0.first { if case .unplugged = $0 { return true } else { return false } } }) else { return }
        #expect(reason.contains("stopped answering"))
        // It pinged with CO_RD_VERSION (after the bring-up's CO_RD_VERSION and CO_RD_IDBASE).
        let sent = fake.read(for: 0.3)
        let ping = ESP3Packet.readVersion.bytes
        let pings = (0...max(0, sent.count - ping.count)).filter { Array(sent[$0..<min(sent.count, $0 + ping.count)]) == ping }.count
        #expect(pings >= 3, "\(pings) CO_RD_VERSION sent")
    }

    @Test func aMissingReceiverIsReportedNotWaitedFor() throws {
        let (receiver, c) = start(path: "/dev/vaktpost/none")
        defer { receiver.stop() }
        #expect(c.waitFor("missing", seconds: 2) { !c.conditions.withLock { $0.isEmpty } })
        #expect(c.conditions.withLock { $0.first } == .unplugged(reason: "receiver usb300 (/dev/vaktpost/none) is not plugged in"))
    }
}
