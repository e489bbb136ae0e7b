import BLEInput
import Testing
import TestSupport
@testable import Agent
@testable import VaktpostCore
import VaktpostPosix

let bleFixtures = repositoryRoot + "/Tests/Fixtures/ble"

@Suite struct BLEReplayTests {
    func config() throws -> Config {
        let text = """
            [hub]
            id = "hub-ble"
            [[sensors]]
            id = "front-door"
            role = "door"
            room = "front-door"
            transport = "ble"
            address = "3C:2E:F5:12:34:56"
            field = "window"
            [[sensors]]
            id = "fall"
            role = "fall"
            room = "bathroom"
            transport = "ble"
            address = "3C:2E:F5:AB:CD:EF"
            field = "button"
            [[rules]]
            id = "fall"
            kind = "fall"
            sensor = "fall"
            """
        return try #require(ConfigReader.read(text).config)
    }

    /// A capture of one night, replayed end to end: btsnoop → HCI events → reports → BTHome →
    /// the readings the rule engine sees. Both file formats give the same readings.
    @Test(arguments: ["night-monitor.btsnoop", "night-h4.btsnoop"])
    func aCaptureReplaysIntoReadings(file: String) throws {
        var router = BLERouter(sensors: try config().sensors)
        var heard: [BLEHeard] = []
        for record in try BTSnoopSource.events(path: "\(bleFixtures)/\(file)") {
            for report in try HCI.advertisingReports(record.event).get() {
                heard.append(router.handle(report, at: record.time, decrypt: AESCCM.decrypt))
            }
        }
        let zone = try TimeZoneRules(identifier: "Europe/Oslo", posix: "CET-1CEST,M3.5.0,M10.5.0/3")
        let readings = heard.compactMap(\.reading)
        #expect(readings.map { "\(zone.format($0.receivedAt)) \($0.sensor)" } == [
            "2026-11-23T23:30:00+01:00 front-door", "2026-11-23T23:31:00+01:00 front-door", "2026-11-23T23:45:00+01:00 fall",
        ])
        #expect(readings[0].values == ReadingValues(open: true, battery: 100, rssi: -71))
        #expect(readings[1].values == ReadingValues(open: false, battery: 100, rssi: -70))
        #expect(readings[2].values == ReadingValues(fall: true, battery: 100, rssi: -65))
        // The repeat one second later is refused; the phone is heard but is no sensor of ours.
        #expect(heard.compactMap(\.rejection) == [.duplicatePacketID(0x5D)])
        let phone = heard.first { $0.address == "5A:11:22:33:44:55" }
        #expect(phone != nil && phone?.sensor == nil && phone?.packet == nil)
        #expect(heard.first { $0.sensor?.rawValue == "front-door" }?.localName == "SBDW-002C")
    }

    /// A fall button without packet id sends its press several times: one fall alarm, and no
    /// "another fall" news for the copies. Then it says "no press", and a press after that is
    /// news again (the alarm is still open).
    @Test func aPressSentSeveralTimesIsOneFall() throws {
        let config = try config()
        var router = BLERouter(sensors: config.sensors)
        let engine = RuleEngine(config: config, zone: .utc)
        var state = EngineState()
        var events = EventFactory(rng: SplitMix64(seed: 3)) { EventTime(wall: $0, utcOffsetSeconds: 0, boottimeNanoseconds: 0, bootID: "b", clockSynced: true) }
        let t0 = WallTime(secondsSinceEpoch: 1_790_000_000)
        func advert(_ serviceData: String, at ms: Int64) {
            let bytes = bytesFromHex(serviceData)
            let report = AdvertisingReport(address: "3C:2E:F5:AB:CD:EF", addressType: .public, rssi: -60, extended: false,
                                           data: [UInt8(bytes.count + 3), 0x16, 0xD2, 0xFC] + bytes)
            let heard = router.handle(report, at: t0 + .milliseconds(ms), decrypt: AESCCM.decrypt)
            if let reading = heard.reading { engine.handle(reading, state: &state, events: &events) }
        }
        for ms in stride(from: Int64(0), through: 1_500, by: 300) { advert("4001643a01", at: ms) }
        #expect(events.events.map { "\($0.type.rawValue) \($0.state.rawValue)" } == ["fall.detected active"])
        advert("4001643a00", at: 2_000)
        advert("4001643a01", at: 2_500)
        #expect(events.events.map { "\($0.type.rawValue) \($0.state.rawValue)" } == ["fall.detected active", "fall.detected update"])
    }

    /// Counters survive a restart: after saving and loading, a replayed older packet is still refused,
    /// and the same packet again is a retransmission whose events do not fire twice.
    @Test func countersPersistAcrossARestart() throws {
        try withTemporaryDirectory { dir in
            let key = bytesFromHex("231d39c1d7cc1ab1aee224cd096db932")
            let mac = "54:48:E6:8F:80:A5"
            let store = BTHomeHistoryStore(path: dir + "/bthome.json")
            #expect(try store.load().isEmpty)
            var histories: [String: BTHomeHistory] = [:]
            var h = BTHomeHistory()
            let t = WallTime(secondsSinceEpoch: 1_790_000_000)
            _ = try BTHome.decode(serviceData: bytesFromHex("41e445f3c9962b332211006c7c4519"), mac: mac, key: key, at: t, history: &h, decrypt: AESCCM.decrypt).get()
            histories[mac] = h
            try store.save(histories)
            #expect(try Files.status(dir + "/bthome.json").mode == 0o600)
            // The agent restarts; an hour later someone replays a recording of an older packet.
            var restored = try #require(try store.load()[mac])
            #expect(restored == h)
            let old = BTHome.decode(serviceData: bytesFromHex("41723d3035fb88322211009e7414c0"), mac: mac, key: key, at: t + .seconds(3600), history: &restored, decrypt: AESCCM.decrypt)
            #expect(old == .failure(.counterNotNewer(counter: 1_122_866, last: 1_122_867)))
            let same = try BTHome.decode(serviceData: bytesFromHex("41e445f3c9962b332211006c7c4519"), mac: mac, key: key, at: t + .seconds(3601), history: &restored, decrypt: AESCCM.decrypt).get()
            #expect(same.isRetransmission)
            try Files.writeAtomically(dir + "/bthome.json", Array("[1]".utf8))
            #expect(throws: (any Error).self) { try store.load() }
        }
    }
}

func bytesFromHex(_ s: String) -> [UInt8] { Hex.bytes(s)! }
