import BLEInput
import Testing
import VaktpostCore
import VaktpostPosix

/// `../shared/testdata/bthome_vectors.json`, verified against bthome-ble 3.25.0 (research/ble.md §3).
struct BTHomeVector: CustomTestStringConvertible, Sendable {
    var name: String
    var mac: String
    var key: [UInt8]?
    var serviceData: [UInt8]
    var prior: [[UInt8]]
    var expected: JSONValue
    var expectReject: Bool
    var testDescription: String { name }

    static let all: [BTHomeVector] = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        let path = parts.joined(separator: "/") + "/../shared/testdata/bthome_vectors.json"
        guard let bytes = try? Files.read(path), let json = try? JSONValue.parse(String(decoding: bytes, as: UTF8.self)),
            case .array(let items) = json
        else { return [] }
        return items.map { v in
            BTHomeVector(
                name: v["name"]!.stringValue!, mac: v["mac"]!.stringValue!, key: v["key"]?.stringValue.map(hex),
                serviceData: hex(v["service_data_hex"]!.stringValue!),
                prior: priors(v["prior_service_data_hex"]),
                expected: v["expected"]!, expectReject: v["expect_reject"] == .bool(true))
        }
    }()
}

func priors(_ v: JSONValue?) -> [[UInt8]] {
    guard case .array(let items)? = v else { return [] }
    return items.compactMap { $0.stringValue.map(hex) }
}

func hex(_ s: String) -> [UInt8] { Hex.bytes(s)! }

/// Equal as JSON, numbers within a small relative tolerance (the vectors round like bthome-ble).
func close(_ a: JSONValue, _ b: JSONValue) -> Bool {
    func number(_ v: JSONValue) -> Double? {
        switch v {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }
    if let x = number(a), let y = number(b) { return abs(x - y) <= max(1e-9, abs(y) * 1e-6) }
    switch (a, b) {
    case (.object(let x), .object(let y)):
        return x.count == y.count && x.allSatisfy { key, value in y.first { $0.0 == key }.map { close(value, $0.1) } ?? false }
    default:
        return a == b
    }
}

@Suite struct BTHomeVectorTests {
    @Test func theSharedVectorsAreAllHere() {
        #expect(BTHomeVector.all.count >= 39)
    }

    @Test(arguments: BTHomeVector.all)
    func vector(_ v: BTHomeVector) {
        var history = BTHomeHistory()
        var t = RFC3339.parse("2026-11-24T10:00:00Z")!.time
        for p in v.prior {
            _ = BTHome.decode(serviceData: p, mac: v.mac, key: v.key, at: t, history: &history, decrypt: AESCCM.decrypt)
            t = t + .seconds(1)
        }
        let result = BTHome.decode(serviceData: v.serviceData, mac: v.mac, key: v.key, at: t, history: &history, decrypt: AESCCM.decrypt)
        switch result {
        case .success(let packet):
            #expect(!v.expectReject, "\(v.name) was accepted: \(packet.json.serialized)")
            #expect(close(packet.json, v.expected), "\(v.name): got \(packet.json.serialized), expected \(v.expected.serialized)")
        case .failure(let reason):
            #expect(v.expectReject, "\(v.name) was rejected: \(reason)")
        }
    }

    /// The bthome.io worked example, byte for byte.
    @Test func aesCCMMatchesTheBTHomeWorkedExample() throws {
        let plain = AESCCM.decrypt(
            key: hex("231d39c1d7cc1ab1aee224cd096db932"), nonce: hex("5448e68f80a5d2fc4133221100"),
            ciphertext: hex("e445f3c9962b"), tag: hex("6c7c4519"))
        #expect(plain == hex("02ca0903bf13"))
        #expect(AESCCM.decrypt(key: hex("231d39c1d7cc1ab1aee224cd096db932"), nonce: hex("5448e68f80a5d2fc4133221100"),
                               ciphertext: hex("e445f3c9962b"), tag: hex("6c7c451a")) == nil)
    }
}

@Suite struct BTHomeBindingTests {
    func decode(_ hexData: String, mac: String = "3C:2E:F5:12:34:56") throws -> BTHomePacket {
        var h = BTHomeHistory()
        return try BTHome.decode(serviceData: hex(hexData), mac: mac, key: nil, at: WallTime(secondsSinceEpoch: 0), history: &h, decrypt: AESCCM.decrypt).get()
    }

    /// Sensors come only from a validated config; build one the way a technician would.
    func sensor(_ role: SensorRole) -> SensorConfig {
        ConfigReader.read("[hub]\nid = \"h\"\n[[sensors]]\nid = \"s\"\nrole = \"\(role.rawValue)\"\nroom = \"bedroom\"\n", scope: .replay).config!.sensors[0]
    }

    @Test func aShellyDoorWindowOpeningBecomesAnOpenDoorWithBatteryAndRSSI() throws {
        let packet = try decode("44005d016405fc21002d013f9601")  // shelly_blu_door_window_open
        #expect(BTHomeBinding.values(packet, for: sensor(.door), field: "window", rssi: -71)
                == ReadingValues(open: true, battery: 100, rssi: -71))
        let closed = try decode("440056016405e406012d003f0000")
        #expect(BTHomeBinding.values(closed, for: sensor(.door), field: "window", rssi: nil).open == false)
    }

    @Test func aButtonPressIsAFallForAFallDetectorAndAPressForAButton() throws {
        let packet = try decode("40001e01643a02")  // shelly_blu_button_double_press
        #expect(BTHomeBinding.values(packet, for: sensor(.fall), field: "button", rssi: nil).fall == true)
        #expect(BTHomeBinding.values(packet, for: sensor(.button), field: "button", rssi: nil).pressed == true)
        let none = try decode("40001f01643a00")  // beacon: button "none"
        #expect(BTHomeBinding.values(none, for: sensor(.fall), field: "button", rssi: nil) == ReadingValues(battery: 100))
    }

    @Test func occupancyDrivesABedAndTamperTravelsAlong() throws {
        let packet = try decode("4023012b01")
        #expect(BTHomeBinding.values(packet, for: sensor(.bed), field: "occupancy", rssi: nil) == ReadingValues(occupied: true, tamper: true))
    }
}

/// A plaintext sender with no packet id: it repeats each advertisement to be heard, and nothing
/// in it tells a second press from a copy. One press must be one alarm, not one per copy.
@Suite struct BTHomeCopiesTests {
    let mac = "3C:2E:F5:12:34:56"
    let single = hex("4001643a01")  // battery 100 %, button: press; no packet id (0x00), no counter
    let double = hex("4001643a02")
    let t0 = RFC3339.parse("2026-11-24T02:10:00Z")!.time

    func presses(_ heard: [([UInt8], Duration)], history: inout BTHomeHistory) throws -> [Bool] {
        try heard.map { bytes, at in
            let packet = try BTHome.decode(serviceData: bytes, mac: mac, key: nil, at: t0 + at, history: &history, decrypt: AESCCM.decrypt).get()
            #expect(packet.sensor("battery") != nil, "a copy's values stand")
            return !packet.events.isEmpty
        }
    }

    @Test func copiesOfOnePressFireItOnce() throws {
        var h = BTHomeHistory()
        let fired = try presses([(single, .zero), (single, .milliseconds(100)), (single, .milliseconds(350)), (single, .milliseconds(1200))], history: &h)
        #expect(fired == [true, false, false, false])
    }

    /// Counted from the first copy: a sender that keeps sending one press cannot hide a press made
    /// after it, and the same press again once 4 s have gone by is a press of its own.
    @Test func theSameAdvertisementFourSecondsLaterIsANewPress() throws {
        var h = BTHomeHistory()
        let heard = stride(from: 0, through: 9_000, by: 500).map { (single, Duration.milliseconds($0)) }
        let fired = try presses(heard, history: &h)
        #expect(fired.enumerated().filter(\.element).map { $0.offset * 500 } == [0, 4_500, 9_000])
    }

    @Test func aDifferentPressWithinTheFourSecondsFires() throws {
        var h = BTHomeHistory()
        #expect(try presses([(single, .zero), (double, .milliseconds(500)), (single, .seconds(1))], history: &h) == [true, true, true])
    }

    /// A sender that says "no press" between two presses has made two: the second is no copy,
    /// however soon.
    @Test func aPressAfterSomethingElseIsNoCopy() throws {
        var h = BTHomeHistory()
        let none = hex("4001643a00")
        let fired = try presses([(single, .zero), (single, .milliseconds(300)), (none, .seconds(1)), (none, .milliseconds(1300)),
                                 (single, .seconds(2)), (single, .milliseconds(2300))], history: &h)
        #expect(fired == [true, false, false, false, true, false])
    }

    /// A clock set back must not turn a new press into a copy (a dropped alarm), nor a sender's
    /// packet ids, started again after a battery change, into old ones for the next hour.
    @Test func aClockSetBackMakesNoPressACopyAndNoPacketOld() throws {
        var h = BTHomeHistory()
        #expect(try presses([(single, .zero), (single, .seconds(-3600))], history: &h) == [true, true])
        var ids = BTHomeHistory()
        _ = try BTHome.decode(serviceData: hex("4000c801643a01"), mac: mac, key: nil, at: t0, history: &ids, decrypt: AESCCM.decrypt).get()  // packet id 200
        let restarted = BTHome.decode(serviceData: hex("40006401643a01"), mac: mac, key: nil, at: t0 - .seconds(3600), history: &ids, decrypt: AESCCM.decrypt)
        #expect(try restarted.get().events.isEmpty == false)
        // With the clock moving forward, packet id 100 a second after 200 is still refused as old.
        var forward = BTHomeHistory()
        _ = try BTHome.decode(serviceData: hex("4000c801643a01"), mac: mac, key: nil, at: t0, history: &forward, decrypt: AESCCM.decrypt).get()
        #expect(BTHome.decode(serviceData: hex("40006401643a01"), mac: mac, key: nil, at: t0 + .seconds(1), history: &forward, decrypt: AESCCM.decrypt)
                == .failure(.olderPacketID(100, last: 200)))
    }

    /// Senders with a packet id or a counter are told apart by those, as before.
    @Test func aPacketIDStillDecides() throws {
        var h = BTHomeHistory()
        let a = try BTHome.decode(serviceData: hex("40000501643a01"), mac: mac, key: nil, at: t0, history: &h, decrypt: AESCCM.decrypt).get()
        let b = try BTHome.decode(serviceData: hex("40000601643a01"), mac: mac, key: nil, at: t0 + .milliseconds(300), history: &h, decrypt: AESCCM.decrypt).get()
        #expect(!a.events.isEmpty && !b.events.isEmpty, "a new packet id is a new press, however close")
    }

    /// The last packet id again after a pause: the same packet when its bytes are (a sender
    /// repeating it), a new press when they are not. Packet ids are one byte: a sender's ids
    /// start again when its battery is changed, and come round while it is out of range, and a
    /// fall pressed then must not be taken for an old one.
    @Test func theLastPacketIDAgainIsANewPressOnlyWithOtherBytes() throws {
        var h = BTHomeHistory()
        func fires(_ bytes: String, at seconds: Int64) throws -> Bool {
            try !BTHome.decode(serviceData: hex(bytes), mac: mac, key: nil, at: t0 + .seconds(seconds), history: &h, decrypt: AESCCM.decrypt).get().events.isEmpty
        }
        #expect(try fires("40000501643a01", at: 0))
        #expect(try !fires("40000501643a01", at: 60), "the same packet after a minute")
        #expect(try fires("40000501633a01", at: 3600), "packet id 5 again an hour later, battery 99 %: a press")
        #expect(try fires("40000501633a02", at: 7200), "and a double press under the same id")
    }

    /// A copy read after a restart (the kept scanning socket hands the new run what was heard
    /// meanwhile) is still a copy.
    @Test func theLastPressSurvivesARestart() throws {
        var h = BTHomeHistory()
        #expect(try presses([(single, .zero)], history: &h) == [true])
        var restored = try #require(BTHomeHistory.histories(from: BTHomeHistory.json([mac: h]))?[mac])
        #expect(restored == h)
        #expect(try presses([(single, .seconds(2))], history: &restored) == [false])
    }
}
