/// EnOcean Serial Protocol 3 (research/serial.md §1): what a USB300/TCM310 receiver sends
/// over its serial port. Pure: bytes in, packets out; the serial port lives in SerialInput.

public enum CRC8 {
    /// x⁸+x²+x+1 (0x07), init 0, MSB first, no reflection, no final XOR.
    static let table: [UInt8] = (0..<256).map { i in
        var c = UInt8(i)
        for _ in 0..<8 { c = c & 0x80 != 0 ? (c << 1) ^ 0x07 : c << 1 }
        return c
    }

    public static func of<C: Collection>(_ bytes: C) -> UInt8 where C.Element == UInt8 {
        bytes.reduce(0) { table[Int($0 ^ $1)] }
    }
}

/// One ESP3 packet with valid CRCs.
public struct ESP3Packet: Equatable, Sendable {
    public var type: UInt8
    public var data: [UInt8]
    public var optional: [UInt8]

    public init(type: UInt8, data: [UInt8], optional: [UInt8]) {
        self.type = type
        self.data = data
        self.optional = optional
    }

    public static let radioERP1: UInt8 = 0x01
    public static let response: UInt8 = 0x02
    public static let event: UInt8 = 0x04
    public static let commonCommand: UInt8 = 0x05

    /// The packet as the receiver would send it, CRCs included: for commands to the receiver and for tests.
    public var bytes: [UInt8] {
        let header: [UInt8] = [UInt8(data.count >> 8), UInt8(data.count & 0xFF), UInt8(optional.count), type]
        return [0x55] + header + [CRC8.of(header)] + data + optional + [CRC8.of(data + optional)]
    }

    /// `CO_RD_VERSION`, `CO_RD_IDBASE`: what the agent asks a receiver at bring-up and as a liveness ping.
    public static let readVersion = ESP3Packet(type: commonCommand, data: [0x03], optional: [])
    public static let readIDBase = ESP3Packet(type: commonCommand, data: [0x08], optional: [])
}

/// Finds frames in a byte stream that arrives in arbitrary pieces, resynchronising after
/// garbage the way the spec (§1.5) asks: a 0x55 whose header CRC fails, whose lengths are
/// zero or absurd, or whose data CRC fails was not a sync byte; the search goes on from the
/// byte after it, never skipping the claimed length.
public struct ESP3Framer: Sendable {
    /// data + optional longer than this is a false sync (a real one is at most a few hundred).
    public static let maximumLength = 1024

    var buffer: [UInt8] = []
    public private(set) var discarded = 0

    public init() {}

    /// Feeds bytes and returns every complete, valid packet they finish.
    public mutating func feed<C: Collection>(_ bytes: C) -> [ESP3Packet] where C.Element == UInt8 {
        buffer.append(contentsOf: bytes)
        var packets: [ESP3Packet] = []
        while let packet = next() { packets.append(packet) }
        return packets
    }

    /// Bytes of a frame that stopped arriving: drop its sync byte and look again (the idle
    /// timeout, called by the reader when nothing came for a while).
    public mutating func flushStale() -> [ESP3Packet] {
        guard !buffer.isEmpty else { return [] }
        dropOne()
        var packets: [ESP3Packet] = []
        while let packet = next() { packets.append(packet) }
        return packets
    }

    public var pending: Int { buffer.count }

    mutating func dropOne() {
        buffer.removeFirst()
        discarded += 1
    }

    mutating func next() -> ESP3Packet? {
        while true {
            guard let sync = buffer.firstIndex(of: 0x55) else {
                discarded += buffer.count
                buffer.removeAll(keepingCapacity: true)
                return nil
            }
            if sync > 0 {
                discarded += sync
                buffer.removeFirst(sync)
            }
            guard buffer.count >= 6 else { return nil }
            let dataLength = Int(buffer[1]) << 8 | Int(buffer[2])
            let optionalLength = Int(buffer[3])
            // The header CRC is checked before waiting for the data a false sync claims.
            guard CRC8.of(buffer[1...4]) == buffer[5], dataLength > 0, dataLength + optionalLength <= ESP3Framer.maximumLength else {
                dropOne()
                continue
            }
            let total = 7 + dataLength + optionalLength
            guard buffer.count >= total else { return nil }
            let body = buffer[6..<(total - 1)]
            guard CRC8.of(body) == buffer[total - 1] else {
                dropOne()
                continue
            }
            let packet = ESP3Packet(
                type: buffer[4], data: Array(buffer[6..<(6 + dataLength)]),
                optional: Array(buffer[(6 + dataLength)..<(total - 1)]))
            buffer.removeFirst(total)
            return packet
        }
    }
}

/// A decoded ESP3 packet in the shape of `expect` in the shared vectors.
public struct ESP3Telegram: Equatable, Sendable {
    public var packet: ESP3Packet
    /// RADIO_ERP1 only.
    public var rorg: UInt8?
    public var payload: [UInt8] = []
    /// `01825DAB`
    public var senderID: String?
    public var status: UInt8?
    public var subTelegrams: Int?
    public var destinationID: String?
    /// dBm, negative; nil when absent or 0xFF ("sent", not received).
    public var dbm: Int?
    public var securityLevel: Int?

    public init(_ packet: ESP3Packet) {
        self.packet = packet
        guard packet.type == ESP3Packet.radioERP1, packet.data.count >= 6 else { return }
        let d = packet.data
        rorg = d[0]
        payload = Array(d[1..<(d.count - 5)])
        senderID = Hex.string(Array(d[(d.count - 5)..<(d.count - 1)])).uppercased()
        status = d[d.count - 1]
        let o = packet.optional
        if o.count >= 7 {
            subTelegrams = Int(o[0])
            destinationID = Hex.string(Array(o[1...4])).uppercased()
            dbm = o[5] == 0xFF ? nil : -Int(o[5])
            securityLevel = Int(o[6])
        }
    }

    /// How many repeaters the telegram came through (status bits 3..0 of RPS, 1BS and 4BS): 0
    /// for the sender's own transmission. Nil for the other RORGs, whose status says nothing of it.
    public var repeaterCount: UInt8? {
        guard let rorg, let status, [0xF6, 0xD5, 0xA5].contains(rorg) else { return nil }
        return status & 0x0F
    }

    /// RORG families with an LRN bit: 1BS (D5) and 4BS (A5). DB0.3 = 0 means teach-in.
    public var isTeachIn: Bool? {
        switch rorg {
        case 0xD5?: return payload.first.map { $0 & 0x08 == 0 }
        case 0xA5? where payload.count == 4: return payload[3] & 0x08 == 0
        default: return nil
        }
    }

    /// A 4BS teach-in of variant 2 names its profile: FUNC, TYPE and manufacturer.
    public var teachInProfile: (eep: String, manufacturer: Int)? {
        guard rorg == 0xA5, payload.count == 4, isTeachIn == true, payload[3] & 0x80 != 0 else { return nil }
        let function = payload[0] >> 2
        let type = (payload[0] & 0x03) << 5 | payload[1] >> 3
        let manufacturer = Int(payload[1] & 0x07) << 8 | Int(payload[2])
        return ("A5-\(hex2(function).uppercased())-\(hex2(type).uppercased())", manufacturer)
    }

    /// The vector shape: header fields, ERP1 fields, and, given the sender's EEP, its values.
    public func json(eep: String?) -> JSONValue {
        var f: [(String, JSONValue?)] = [
            ("packet_type", .int(Int64(packet.type))),
            ("data_len", .int(Int64(packet.data.count))),
            ("opt_len", .int(Int64(packet.optional.count))),
        ]
        switch packet.type {
        case ESP3Packet.response:
            f.append(("return_code", packet.data.first.map { .int(Int64($0)) }))
            if packet.data.count > 1 { f.append(("response_data", .string(Hex.string(Array(packet.data.dropFirst())).uppercased()))) }
        case ESP3Packet.event:
            f.append(("event_code", packet.data.first.map { .int(Int64($0)) }))
        case ESP3Packet.commonCommand:
            f.append(("command_code", packet.data.first.map { .int(Int64($0)) }))
        default:
            break
        }
        if let rorg, let status {
            f.append(("rorg", .string(hex2(rorg).uppercased())))
            f.append(("sender_id", senderID.map(JSONValue.string)))
            f.append(("status", .int(Int64(status))))
            if let count = repeaterCount { f.append(("repeater_count", .int(Int64(count)))) }
            if let subTelegrams {
                f.append(("sub_tel_num", .int(Int64(subTelegrams))))
                f.append(("destination_id", destinationID.map(JSONValue.string)))
                f.append(("dbm", dbm.map { .int(Int64($0)) } ?? .null))
                f.append(("security_level", securityLevel.map { .int(Int64($0)) }))
            }
            if rorg == 0xF6 {
                f.append(("t21", .bool(status & 0x20 != 0)))
                f.append(("nu", .bool(status & 0x10 != 0)))
            }
            if let teachIn = isTeachIn { f.append(("teach_in", .bool(teachIn))) }
            if let profile = teachInProfile {
                f.append(("teach_in_eep", .string(profile.eep)))
                f.append(("teach_in_manufacturer", .int(Int64(profile.manufacturer))))
            }
            if let eep, let values = EEP.values(eep, telegram: self) {
                f.append(("eep", .string(eep)))
                f.append(("values", .object(values.map { ($0.0, .int(Int64($0.1))) })))
            }
        }
        return .object(dropping: f)
    }
}

/// EnOcean Equipment Profiles: the raw field values of the profiles the agent reads, named as
/// in EnOcean's EEP specification (and kipe/enocean's EEP.xml, which the vectors were checked with).
public enum EEP {
    public static let supported = ["F6-02-01", "F6-02-02", "D5-00-01", "A5-07-01", "A5-07-02", "A5-07-03", "A5-08-01", "A5-02-05", "D2-01-01"]

    public static func values(_ eep: String, telegram t: ESP3Telegram) -> [(String, Int)]? {
        let p = t.payload
        switch (eep, t.rorg) {
        case ("F6-02-01", 0xF6?), ("F6-02-02", 0xF6?):
            guard let db0 = p.first else { return nil }
            return [("R1", Int(db0 >> 5)), ("EB", Int(db0 >> 4 & 1)), ("R2", Int(db0 >> 1 & 7)), ("SA", Int(db0 & 1))]
        case ("D5-00-01", 0xD5?):
            guard let db0 = p.first else { return nil }
            return [("CO", Int(db0 & 1))]  // 0 open, 1 closed
        case ("A5-07-01", 0xA5?) where p.count == 4:
            return [("SVC", Int(p[0])), ("PIR", Int(p[2] >> 7))]  // DB1 128..255: motion
        case ("A5-07-02", 0xA5?) where p.count == 4:
            return [("SVC", Int(p[0])), ("PIRS", Int(p[3] >> 7))]
        case ("A5-07-03", 0xA5?) where p.count == 4:
            return [("SVC", Int(p[0])), ("ILL", Int(p[1]) << 2 | Int(p[2] >> 6)), ("PIRS", Int(p[3] >> 7))]
        case ("A5-08-01", 0xA5?) where p.count == 4:
            return [("SVC", Int(p[0])), ("ILL", Int(p[1])), ("TMP", Int(p[2])), ("PIRS", Int(p[3] >> 1 & 1)), ("OCC", Int(p[3] & 1))]
        case ("A5-02-05", 0xA5?) where p.count == 4:
            return [("TMP", Int(p[2]))]
        case ("D2-01-01", 0xD2?) where p.count >= 3:
            return [("CMD", Int(p[0] & 0x0F)), ("IO", Int(p[1] & 0x1F)), ("OV", Int(p[2] & 0x7F))]
        default:
            return nil
        }
    }

    /// Why a telegram from a configured sender cannot be read with its `eep`, when it surely
    /// cannot: data of another profile family (a rocker switch configured as a contact, say), or
    /// EnOcean security, which the agent does not read. Nil when it fits, and for what any sender
    /// may send now and then beside its data (teach-in, signal, remote management, its own
    /// family's other telegrams): the sensor is then heard or not by its data alone.
    public static func misfit(_ t: ESP3Telegram, eep: String) -> String? {
        guard let rorg = t.rorg, t.isTeachIn != true else { return nil }
        let family: [UInt8: String] = [0xF6: "rocker switch (RPS, F6)", 0xD5: "contact (1BS, D5)", 0xA5: "4BS (A5)", 0xD2: "VLD (D2)"]
        if let name = family[rorg], let expected = UInt8(eep.prefix(2), radix: 16), expected != rorg {
            return "a \(name) telegram does not fit its eep \(eep)"
        }
        if [0x30, 0x31, 0x33].contains(rorg) {
            return "an encrypted telegram (EnOcean security, RORG \(hex2(rorg).uppercased())): the agent reads EnOcean telegrams only in the clear"
        }
        return nil
    }

    /// What a telegram from a configured sender means for its role: the values the rule engine sees.
    /// nil for a teach-in or a telegram that says nothing about the role's state.
    public static func reading(_ t: ESP3Telegram, eep: String, role: SensorRole) -> ReadingValues? {
        guard t.isTeachIn != true, let values = values(eep, telegram: t) else { return nil }
        let v = Dictionary(values, uniquingKeysWith: { a, _ in a })
        var r = ReadingValues(rssi: t.dbm)
        let state: Bool?
        switch eep {
        case "D5-00-01": state = role == .door ? v["CO"] == 0 : v["CO"] == 1  // a door contact is open at 0; a bed or mat contact is "occupied" when closed
        case "F6-02-01", "F6-02-02": state = v["EB"] == 1 ? true : nil  // a press; the release says nothing
        case "A5-07-01": state = v["PIR"] == 1
        case "A5-07-02", "A5-07-03": state = v["PIRS"] == 1
        case "A5-08-01": state = v["PIRS"] == 0  // inverted in this profile: 0 = motion
        default: state = nil
        }
        guard let state else { return r }
        switch role {
        case .bed: r.occupied = state
        case .door: r.open = state
        case .motion: r.motion = state
        case .fall: r.fall = state ? true : nil
        case .button: r.pressed = state ? true : nil
        }
        return r
    }
}
