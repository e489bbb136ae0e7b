#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import VaktpostCore

/// `../shared/testdata/esp3_vectors.json`, checked against kipe/enocean (research/serial.md §2).
struct ESP3Vector: CustomTestStringConvertible, Sendable {
    var name: String
    var bytes: [UInt8]
    var expect: JSONValue?
    var frames: Int?
    var testDescription: String { name }

    static let all: [ESP3Vector] = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        let path = parts.joined(separator: "/") + "/../shared/testdata/esp3_vectors.json"
        guard let text = readText(path), case .array(let items)? = try? JSONValue.parse(text) else { return [] }
        return items.map { v in
            ESP3Vector(
                name: v["name"]!.stringValue!, bytes: Hex.bytes(v["hex"]!.stringValue!)!,
                expect: v["expect_reject"] == .bool(true) ? nil : v["expect"], frames: v["frames_in_stream"]?.intValue.map(Int.init))
        }
    }()
}

/// The core does no I/O; the test reads the shared file with plain libc.
func readText(_ path: String) -> String? {
    guard let f = fopen(path, "rb") else { return nil }
    defer { fclose(f) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buffer, 1, buffer.count, f)
        if n <= 0 { break }
        out += buffer[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}

@Suite struct ESP3Tests {
    @Test func crc8MatchesTheCatalogueAndTheWorkedExamples() {
        #expect(CRC8.of(Array("123456789".utf8)) == 0xF4)
        #expect(CRC8.of([0x00, 0x01, 0x00, 0x05]) == 0x70)
        #expect(CRC8.of([0x08]) == 0x38)
        #expect(ESP3Packet.readIDBase.bytes == Hex.bytes("5500010005700838"))
        #expect(ESP3Packet.readVersion.bytes == Hex.bytes("5500010005700309"))
    }

    @Test func theSharedVectorsAreAllHere() { #expect(ESP3Vector.all.count >= 24) }

    static func chunkings(_ bytes: [UInt8], seed: UInt64) -> [[[UInt8]]] {
        var rng = SplitMix64(seed: seed)
        var random: [[UInt8]] = []
        var i = 0
        while i < bytes.count {
            let n = Int.random(in: 1...7, using: &rng)
            random.append(Array(bytes[i..<min(bytes.count, i + n)]))
            i += n
        }
        return [[bytes], bytes.map { [$0] }, random]
    }

    @Test(arguments: ESP3Vector.all)
    func vectorDecodesWholeByteByByteAndInChunks(_ v: ESP3Vector) {
        for (n, pieces) in Self.chunkings(v.bytes, seed: UInt64(v.name.utf8.count)).enumerated() {
            var framer = ESP3Framer()
            var packets: [ESP3Packet] = []
            for piece in pieces { packets += framer.feed(piece) }
            guard let expect = v.expect else {
                #expect(packets.isEmpty, "\(v.name) chunking \(n): a rejected stream produced \(packets.count) packets")
                continue
            }
            if let frames = v.frames { #expect(packets.count == frames, "\(v.name) chunking \(n)") }
            guard let last = packets.last else { Issue.record("\(v.name) chunking \(n): no packet"); continue }
            let json = ESP3Telegram(last).json(eep: expect["eep"]?.stringValue)
            #expect(json == expect, "\(v.name) chunking \(n):\n  got      \(json.serialized)\n  expected \(expect.serialized)")
        }
    }

    /// A telegram of another family than the configured eep cannot be that sensor's data; an
    /// encrypted one cannot be read; what any sender sends beside its data is no misfit.
    @Test func aTelegramOfAnotherFamilyOrEncryptedDoesNotFit() {
        func telegram(_ data: [UInt8]) -> ESP3Telegram {
            ESP3Telegram(ESP3Packet(type: 1, data: data + [0x01, 0x80, 0xA5, 0xD2, 0x00], optional: []))
        }
        #expect(EEP.misfit(telegram([0xF6, 0x50]), eep: "D5-00-01") == "a rocker switch (RPS, F6) telegram does not fit its eep D5-00-01")
        #expect(EEP.misfit(telegram([0xD5, 0x09]), eep: "A5-07-01") == "a contact (1BS, D5) telegram does not fit its eep A5-07-01")
        #expect(EEP.misfit(telegram([0xA5, 0, 0, 0xFF, 0x08]), eep: "F6-02-01") == "a 4BS (A5) telegram does not fit its eep F6-02-01")
        #expect(EEP.misfit(telegram([0x31, 1, 2, 3, 4]), eep: "F6-02-01")?.hasPrefix("an encrypted telegram (EnOcean security, RORG 31)") == true)
        #expect(EEP.misfit(telegram([0xD5, 0x09]), eep: "D5-00-01") == nil)
        #expect(EEP.misfit(telegram([0xD5, 0x00]), eep: "A5-07-01") == nil, "a teach-in")
        #expect(EEP.misfit(telegram([0xA5, 0, 0, 0, 0x00]), eep: "D5-00-01") == nil, "a 4BS teach-in")
        #expect(EEP.misfit(telegram([0xA5, 0, 0]), eep: "A5-07-01") == nil, "its own family, cut short: not surely a misfit")
        #expect(EEP.misfit(telegram([0xD0, 0x06, 0x01]), eep: "D5-00-01") == nil, "a signal telegram")
        #expect(EEP.misfit(telegram([0xD4, 0xA0, 0xFF, 0x00, 0x00, 0x01, 0x01, 0xD2]), eep: "D2-01-01") == nil, "a UTE teach-in")
    }

    @Test func garbageAndFalseSyncsBeforeAFrameAreSkipped() {
        let contact = Hex.bytes("55000707017AD50901825DAB0001FFFFFFFF3600C7")!
        // Noise, a lone 0x55, a false sync with a bad header CRC, a valid header claiming 64 KiB.
        let noise = Hex.bytes("00FF5513") ?? [] + [0x55, 0x00, 0x07, 0x07, 0x01, 0x00]
        let stream = noise + [0x55, 0x00, 0x07, 0x07, 0x01, 0x00] + Hex.bytes("55FFFFFF012A")! + contact
        var framer = ESP3Framer()
        let packets = framer.feed(stream)
        #expect(packets.map { ESP3Telegram($0).senderID } == ["01825DAB"])
        #expect(framer.pending == 0)
    }

    @Test func aFrameThatStopsArrivingIsDroppedByTheIdleTimeout() {
        var framer = ESP3Framer()
        let contact = Hex.bytes("55000707017AD50901825DAB0001FFFFFFFF3600C7")!
        #expect(framer.feed(contact.prefix(10)).isEmpty)
        #expect(framer.pending == 10)
        #expect(framer.flushStale().isEmpty)  // the partial frame goes, byte by byte rescanned
        #expect(framer.pending == 0)
        #expect(framer.feed(contact).count == 1)
    }

    @Test func configuredSendersBecomeReadings() throws {
        let contact = ESP3Telegram(try #require(ESP3Framer().feedAll(Hex.bytes("55000707017AD50901825DAB0001FFFFFFFF3600C7")!).last))
        #expect(EEP.reading(contact, eep: "D5-00-01", role: .door) == ReadingValues(open: false, rssi: -54))
        let pressed = ESP3Telegram(try #require(ESP3Framer().feedAll(Hex.bytes("55000707017AF650002989793001FFFFFFFF37009D")!).last))
        #expect(EEP.reading(pressed, eep: "F6-02-02", role: .fall) == ReadingValues(fall: true, rssi: -55))
        #expect(EEP.reading(pressed, eep: "F6-02-02", role: .button)?.pressed == true)
        let released = ESP3Telegram(try #require(ESP3Framer().feedAll(Hex.bytes("55000707017AF600002989792002FFFFFFFF4A0003")!).last))
        #expect(EEP.reading(released, eep: "F6-02-02", role: .fall) == ReadingValues(rssi: -74))
        let motion = ESP3Telegram(try #require(ESP3Framer().feedAll(Hex.bytes("55000A0701EBA5AF00FF090512A3F10001FFFFFFFF3C003C")!).last))
        #expect(EEP.reading(motion, eep: "A5-07-01", role: .bed)?.occupied == true)
        let teachIn = ESP3Telegram(try #require(ESP3Framer().feedAll(Hex.bytes("55000A0701EBA508284680018A7B300001FFFFFFFF490026")!).last))
        #expect(EEP.reading(teachIn, eep: "A5-07-01", role: .bed) == nil)
    }
}

extension ESP3Framer {
    func feedAll(_ bytes: [UInt8]) -> [ESP3Packet] {
        var copy = self
        return copy.feed(bytes)
    }
}

@Suite struct SerialRouterTests {
    @Test func configuredSendersBecomeReadingsAndCopiesWithinASecondAreDropped() throws {
        let config = try #require(ConfigReader.read("""
            [hub]
            id = "h"
            [[sensors]]
            id = "front-door"
            role = "door"
            room = "front-door"
            transport = "enocean"
            sender = "01825DAB"
            eep = "D5-00-01"
            """, scope: .replay).config)
        var router = SerialRouter(sensors: config.sensors)
        let open = ESP3Telegram(ESP3Framer().feedAll(Hex.bytes("55000707017AD50801825DAB0001FFFFFFFF360053")!)[0])
        #expect(open.repeaterCount == 0)
        var copy = open  // the same telegram through a repeater: its status counts one
        copy.status = 0x01
        #expect(copy.repeaterCount == 1)
        let t = WallTime(secondsSinceEpoch: 1_790_000_000)
        let first = router.handle(open, at: t, receiver: "usb300")
        #expect(first.sensor?.rawValue == "front-door")
        #expect(first.reading?.values == ReadingValues(open: true, rssi: -54))
        // The repeater's copy, 300 ms later: dropped.
        let again = router.handle(copy, at: t + .milliseconds(300), receiver: "usb300")
        #expect(again.repeated && again.reading == nil)
        // The sender's own transmission again, 500 ms later, through the same receiver: a new
        // telegram (read late together with the first, as telegrams the kernel kept are).
        #expect(router.handle(open, at: t + .milliseconds(500), receiver: "usb300").reading != nil)
        // The same transmission heard by the hub's second receiver: a copy.
        #expect(router.handle(open, at: t + .milliseconds(600), receiver: "usb300-kitchen").repeated)
        // The same content two seconds later is a new telegram, even through a repeater.
        #expect(router.handle(copy, at: t + .seconds(2), receiver: "usb300").reading != nil)
        // Copies do not stretch the window: copies at +0.5 s and +0.9 s, a new press at +1.1 s.
        #expect(router.handle(copy, at: t + .milliseconds(2500), receiver: "usb300").repeated)
        #expect(router.handle(copy, at: t + .milliseconds(2900), receiver: "usb300").repeated)
        #expect(router.handle(copy, at: t + .milliseconds(3100), receiver: "usb300").reading != nil)
        let stranger = ESP3Telegram(ESP3Framer().feedAll(Hex.bytes("55000707017AF650002989793001FFFFFFFF37009D")!)[0])
        #expect(router.handle(stranger, at: t).sensor == nil)
    }
}
