import Testing
@testable import VaktpostCore

@Suite struct EventTests {
    @Test func uuidV7CarriesTimeVersionAndVariant() throws {
        var rng = SplitMix64(seed: 1)
        let ms: Int64 = 1_774_747_200_123
        let id = EventID.v7(unixMilliseconds: ms, using: &rng)
        #expect(id.version == 7)
        #expect(id.low >> 62 == 0b10)
        #expect(id.unixMilliseconds == ms)
        let text = id.description
        #expect(text.count == 36)
        #expect(Array(text)[14] == "7")
        #expect(EventID(text) == id)
        #expect(EventID("not-a-uuid") == nil)
        let later = EventID.v7(unixMilliseconds: ms + 1, using: &rng)
        #expect(id < later)
    }

    @Test func eventIDsReadOnlyTheCanonicalFormAndWriteIt() {
        let id = EventID(high: 0x0190_f3c1_7b2e_7a44, low: 0x9d0e_5c1f_2a9b_8e01)
        #expect(id.description == "0190f3c1-7b2e-7a44-9d0e-5c1f2a9b8e01")
        #expect(EventID("0190F3C1-7B2E-7A44-9D0E-5C1F2A9B8E01") == id)
        #expect(EventID(high: 0, low: 0).description == "00000000-0000-0000-0000-000000000000")
        #expect(EventID(high: .max, low: .max).description == "ffffffff-ffff-ffff-ffff-ffffffffffff")
        for wrong in ["0190f3c17-b2e-7a44-9d0e-5c1f2a9b8e01", "0190f3c1-7b2e-7a44-9d0e-5c1f2a9b8e0", "0190f3c1-7b2e-7a44-9d0e-5c1f2a9b8e011",
                      "+190f3c1-7b2e-7a44-9d0e-5c1f2a9b8e01", "0190f3c1-7b2e-7a44-9d0e-5c1f2a9b8eg1", "0190f3c1-7b2e-7a44-9d0e-5c1f2a9b8eæ",
                      "0190f3c1_7b2e_7a44_9d0e_5c1f2a9b8e01", "0190f3c1 7b2e-7a44-9d0e-5c1f2a9b8e01", ""] {
            #expect(EventID(wrong) == nil, "\(wrong)")
        }
        var rng = SplitMix64(seed: 9)
        for _ in 0..<1000 {
            let random = EventID(high: rng.next(), low: rng.next())
            #expect(EventID(random.description) == random)
        }
    }

    @Test func everyCatalogTypeIsUniqueAndHasCodes() {
        var seen: Set<EventType> = []
        for kind in EventCatalog.kinds {
            #expect(seen.insert(kind.type).inserted, "\(kind.type) listed twice")
            let codes = EventCatalog.codes(for: kind.type, state: .active, role: .bed, room: .bedroom)
            #expect(codes.scaipDeviceType.count == 4)
            #expect(kind.type.rawValue.contains("."))
            #expect(!kind.meaning.isEmpty)
        }
    }

    @Test func bedNotReturnedCarriesScaipAndVkpCodes() {
        let active = EventCatalog.codes(for: .bedNotReturned, state: .active, role: .bed, room: .bedroom)
        #expect(active == EventCodes(scaipDeviceType: "0012", scaipStatus: "0104", scaipLocation: "012", vkpReason: "2", vkpAlert: "4.2"))
        let cleared = EventCatalog.codes(for: .bedNotReturned, state: .cleared, role: .bed, room: .bedroom)
        #expect(cleared.scaipStatus == "0094")
        #expect(EventCatalog.codes(for: .sensorBatteryLow, state: .cleared, role: .door, room: .frontDoor)
                == EventCodes(scaipDeviceType: "0014", scaipStatus: "0015", scaipLocation: "039", vkpReason: nil, vkpAlert: nil))
        #expect(EventCatalog.codes(for: .uplinkLost, state: .active, role: nil, room: nil).scaipLocation == "002")
    }

    @Test func lanesFollowTheClass() {
        #expect(EventClass.alarm.lane == .alarm)
        #expect(EventClass.technical.lane == .alarm)
        #expect(EventClass.test.lane == .alarm)
        #expect(EventClass.state.lane == .bulk)
        #expect(EventClass.log.lane == .bulk)
    }

    @Test func eventJSONFollowsTheHubEventSchema() {
        var rng = SplitMix64(seed: 7)
        let wall = RFC3339.parse("2026-03-29T03:20:00+02:00")!.time
        let id = EventID.v7(unixMilliseconds: wall.millisecondsSinceEpoch, using: &rng)
        let event = Event(
            eventID: id, seq: 18234, eventClass: .alarm, type: .bedNotReturned, state: .active, correlationID: id,
            priority: Priority(7), sensor: SensorID("bed"), room: .bedroom, rule: "night-bed",
            occurredAt: EventTime(wall: wall, utcOffsetSeconds: 7200, boottimeNanoseconds: 51_234_567_890_123, bootID: "3f1c", clockSynced: true),
            codes: EventCatalog.codes(for: .bedNotReturned, state: .active, role: .bed, room: .bedroom),
            data: [("minutesAway", .int(30))])
        let json = event.json
        #expect(json["schema"] == .string("hub-event/1"))
        #expect(json["eventId"] == .string(id.description))
        #expect(json["seq"] == .int(18234))
        #expect(json["class"] == .string("alarm"))
        #expect(json["type"] == .string("bed.not_returned"))
        #expect(json["occurredAt"] == .string("2026-03-29T03:20:00.000+02:00"))
        #expect(json["location"]?["code"] == .string("012"))
        #expect(json["location"]?["text"] == .string("Soverom"))
        #expect(json["codes"]?["scaip"]?["stc"] == .string("0104"))
        #expect(json["codes"]?["vkp"]?["alert"] == .string("4.2"))
        #expect(json["clock"]?["boottimeNs"] == .int(51_234_567_890_123))
        #expect(json["data"]?["minutesAway"] == .int(30))
        #expect(event.lane == .alarm)
    }

    @Test func jsonEscapesAndOrders() {
        let v = JSONValue.object([("b", .string("line\nbreak \"quoted\" \u{01}")), ("a", .array([.int(1), .double(2.5), .null, .bool(false)]))])
        #expect(v.serialized == #"{"b":"line\nbreak \"quoted\" \u0001","a":[1,2.5,null,false]}"#)
        #expect(JSONValue.double(.nan).serialized == "null")
        #expect(JSONValue.string("\u{1F}\u{10}\u{0F}\u{7F}\t\r\\").serialized == #""\u001f\u0010\u000f\#u{7F}\t\r\\""#)
    }

    /// Whatever a string holds (quotes, backslashes, control characters, letters of any length
    /// in UTF-8, combining marks right after an escaped quote), writing it and reading it back
    /// gives the same string, and the text has no raw control character.
    @Test func jsonStringsSurviveWritingAndReadingBack() throws {
        let pieces = ["\"", "\\", "\n", "\r\n", "\u{01}", "\u{1F}", "\u{7F}", "a", "bed.state", "æøå", "\u{301}", "😀", "/", " ", "\u{2028}"]
        var rng = SplitMix64(seed: 4)
        for _ in 0..<2000 {
            let text = (0..<Int(rng.next() % 12)).map { _ in pieces[Int(rng.next() % UInt64(pieces.count))] }.joined()
            let value = JSONValue.object([(text, .array([.string(text)]))])
            let written = value.serializedBytes
            #expect(!written.contains { $0 < 0x20 })
            #expect(try JSONValue.parse(String(decoding: written, as: UTF8.self)) == value, "\(Array(text.unicodeScalars))")
        }
    }

    /// A \u escape is four hex digits and nothing else: no sign, as `UInt32(_:radix:)` allows.
    @Test(arguments: [#""\u+abc""#, #""\u-000""#, #""\u00g0""#, #""\u00e""#])
    func aUnicodeEscapeIsFourHexDigits(text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test func hexDigitsAreDigitsOnly() throws {
        #expect(try JSONValue.parse(#""\u00E5\u00e5""#) == .string("åå"))
        #expect(Hex.bytes("+f") == nil && Hex.bytes("-0") == nil && Hex.bytes("0g") == nil)
        #expect(Hex.bytes("00fF") == [0x00, 0xFF])
        #expect(Hex.isDigits("0403") && !Hex.isDigits("+403") && !Hex.isDigits(""))
    }

    @Test(arguments: ["bed", "front-door", "a1", String(repeating: "x", count: 32)])
    func validSensorIDs(text: String) { #expect(SensorID(text) != nil) }

    @Test(arguments: ["", "Bed", "front door", "bed_1", "æ", String(repeating: "x", count: 33)])
    func invalidSensorIDs(text: String) { #expect(SensorID(text) == nil) }

    @Test func roomsCarryScaipLocationCodes() {
        #expect(Room.bedroom.scaipLocationCode == "012")
        #expect(Room.bathroom.scaipLocationCode == "011")
        #expect(Room.frontDoor.scaipLocationCode == "039")
        #expect(Set(Room.allCases.map(\.scaipLocationCode)).count == Room.allCases.count)
    }
}
