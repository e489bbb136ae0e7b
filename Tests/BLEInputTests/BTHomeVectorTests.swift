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
