/// BTHome v2 (bthome.io): the service data of UUID 0xFCD2 that Shelly BLU and many other
/// sensors advertise. Pure: bytes and the device's history in, a decoded packet or a reason out.
/// Decryption (AES-128-CCM) is handed in as a function, so the core stays free of C.

/// The first byte of the service data.
public struct BTHomeDeviceInfo: Equatable, Sendable {
    public var byte: UInt8
    public var encrypted: Bool { byte & 0x01 != 0 }
    /// bthome-ble reads bit 1 as "the MAC follows, reversed"; bthome.io calls it reserved.
    public var macIncluded: Bool { byte & 0x02 != 0 }
    /// The device sends irregularly (buttons): silence is not a fault.
    public var triggerBased: Bool { byte & 0x04 != 0 }
    public var version: Int { Int(byte >> 5) }
}

public enum BTHomeValue: Equatable, Sendable {
    /// A measurement, scaled and rounded to the decimals its factor has.
    case number(Double, decimals: Int)
    case text(String)
    case raw([UInt8])
    case timestamp(WallTime)
    case event(String)
    case dimmer(String, steps: Int)
    /// A binary sensor: on or off.
    case flag(Bool)

    public var json: JSONValue {
        switch self {
        case .number(let v, let decimals): return decimals == 0 ? .int(Int64(v)) : .double(v)
        case .text(let s): return .string(s)
        case .raw(let bytes): return .string(Hex.string(bytes))
        case .timestamp(let t): return .string(RFC3339.format(t, utcOffsetSeconds: 0))
        case .event(let name): return .string(name)
        case .dimmer(let name, let steps): return .object([("type", .string(name)), ("steps", .int(Int64(steps)))])
        case .flag(let on): return .bool(on)
        }
    }
}

func hex2(_ b: UInt8) -> String {
    let s = String(b, radix: 16)
    return s.count == 1 ? "0" + s : s
}

/// One accepted advertisement, decoded and named the way the shared vectors name it
/// (`temperature`, `temperature_2`, `window`, `button_2`, ...).
public struct BTHomePacket: Equatable, Sendable {
    public var info: BTHomeDeviceInfo
    /// The sender's address, from the payload when it carries one, else as received.
    public var mac: String
    public var counter: UInt32?
    public var packetID: UInt8?
    public var sensors: [(String, BTHomeValue)]
    public var binary: [(String, Bool)]
    public var events: [(String, BTHomeValue)]
    /// The same packet again (equal counter or packet id): its values stand, its events already fired.
    public var isRetransmission: Bool

    public static func == (a: BTHomePacket, b: BTHomePacket) -> Bool { a.json == b.json && a.info == b.info && a.counter == b.counter }

    public func sensor(_ name: String) -> BTHomeValue? { sensors.first { $0.0 == name }?.1 }
    public func binary(_ name: String) -> Bool? { binary.first { $0.0 == name }?.1 }

    /// `{"sensors": {...}, "binary": {...}, "events": {...}}`, empty groups left out.
    public var json: JSONValue {
        .object(dropping: [
            ("sensors", sensors.isEmpty ? nil : .object(sensors.map { ($0.0, $0.1.json) })),
            ("binary", binary.isEmpty ? nil : .object(binary.map { ($0.0, .bool($0.1)) })),
            ("events", events.isEmpty ? nil : .object(events.map { ($0.0, $0.1.json) })),
        ])
    }
}

/// Why an advertisement was not accepted. Every case is a dropped packet, never a crash.
public enum BTHomeRejection: Error, Equatable, Sendable, CustomStringConvertible {
    case empty
    case unsupportedVersion(Int)
    case truncatedMAC
    case encryptedWithoutKey
    case plaintextFromKeyedDevice
    case encryptedTooShort(Int)
    case authenticationFailed
    case counterNotNewer(counter: UInt32, last: UInt32)
    case duplicatePacketID(UInt8)
    case olderPacketID(UInt8, last: UInt8)
    case unknownFirstObject(UInt8)
    case truncatedFirstObject(UInt8)

    public var description: String {
        switch self {
        case .empty: return "no service data"
        case .unsupportedVersion(let v): return "BTHome version \(v); only version 2 is supported"
        case .truncatedMAC: return "the payload says it carries a MAC but is shorter than one"
        case .encryptedWithoutKey: return "the packet is encrypted and no bthome_key is configured for this sensor"
        case .plaintextFromKeyedDevice: return "plaintext from a sensor that has a key: refused as a possible downgrade or spoof"
        case .encryptedTooShort(let n): return "an encrypted packet of \(n) bytes is too short to hold data, counter and MIC"
        case .authenticationFailed: return "the MIC does not verify: wrong bthome_key, wrong address, or a forged packet"
        case .counterNotNewer(let c, let last): return "encryption counter \(c) is older than the last accepted \(last): refused as a replay"
        case .duplicatePacketID(let p): return "packet id \(p) was just accepted: a repeat"
        case .olderPacketID(let p, let last): return "packet id \(p) is not newer than \(last)"
        case .unknownFirstObject(let id): return "object id 0x\(hex2(id).uppercased()) is unknown, so nothing can be read"
        case .truncatedFirstObject(let id): return "the first object (0x\(hex2(id).uppercased())) is cut short"
        }
    }
}

extension BTHomeRejection {
    /// Whether the sensor's packets stop being heard for this (a key, a counter, a format),
    /// as opposed to a repeat of a packet already taken (`duplicatePacketID`, `olderPacketID`),
    /// which every sensor sends.
    public var saysTheSensorIsNotHeard: Bool {
        switch self {
        case .duplicatePacketID, .olderPacketID: return false
        default: return true
        }
    }
}

/// What the agent remembers about one BTHome sender between packets (persisted per device, so a
/// replayed old packet is refused after a restart too).
public struct BTHomeHistory: Equatable, Sendable {
    public var lastCounter: UInt32?
    public var lastPacketID: UInt8?
    public var lastAcceptedAt: WallTime?
    /// The bytes of the sender's last advertisement and when it began sending them: a sender
    /// with neither counter nor packet id repeats a press (senders send each advertisement
    /// several times to be heard), and it fires once; a packet id heard again after a pause is
    /// the same packet only with the same bytes.
    public var lastAdvertisement: [UInt8]?
    public var sameSince: WallTime?

    public init(lastCounter: UInt32? = nil, lastPacketID: UInt8? = nil, lastAcceptedAt: WallTime? = nil,
                lastAdvertisement: [UInt8]? = nil, sameSince: WallTime? = nil) {
        self.lastCounter = lastCounter
        self.lastPacketID = lastPacketID
        self.lastAcceptedAt = lastAcceptedAt
        self.lastAdvertisement = lastAdvertisement
        self.sameSince = sameSince
    }
}

public enum BTHome {
    /// AES-128-CCM with a 4-byte tag and no associated data: plaintext, or nil when the tag fails.
    public typealias Decrypt = (_ key: [UInt8], _ nonce: [UInt8], _ ciphertext: [UInt8], _ tag: [UInt8]) -> [UInt8]?

    /// Decodes one advertisement from `mac` (printed order, `54:48:E6:8F:80:A5`). On acceptance
    /// `history` moves forward; on rejection it is untouched, so a forged packet cannot move it.
    ///
    /// Stricter than Home Assistant for safety signals:
    /// - a configured key makes plaintext a rejection (downgrade);
    /// - the counter must move forward. Counters compare as 32-bit serial numbers (RFC 1982),
    ///   so 0 after 0xFFFFFFFF is forward, an older counter is refused, and an equal one is the
    ///   same packet again: its values stand and its events do not fire twice;
    /// - a packet id seen within the last 4 s is a repeat, and one not ahead by 1-63 is old; the
    ///   last id again later is the same packet if its bytes are, and a new one if they are not;
    /// - from a sender with neither, a press whose advertisement is byte for byte the last one
    ///   heard from it, which it began sending less than 4 s before, is a copy: its values
    ///   stand, its press does not fire again. Nothing in such an advertisement tells a second
    ///   press from a copy; anything else heard between the two makes it a new press, and the
    ///   4 s count from the first copy, so a sender that keeps sending one press cannot hide a
    ///   later one.
    ///
    /// "Within 4 s" needs the clock to have moved forward: after it was set back, a packet is
    /// taken as new, never as a copy (which would drop a press) or as old (which would refuse it).
    public static func decode(
        serviceData: [UInt8], mac: String, key: [UInt8]?, at time: WallTime, history: inout BTHomeHistory, decrypt: Decrypt
    ) -> Result<BTHomePacket, BTHomeRejection> {
        guard let first = serviceData.first else { return .failure(.empty) }
        let info = BTHomeDeviceInfo(byte: first)
        guard info.version == 2 else { return .failure(.unsupportedVersion(info.version)) }
        var position = 1
        var senderMAC = mac
        if info.macIncluded {
            guard serviceData.count >= 7 else { return .failure(.truncatedMAC) }
            senderMAC = serviceData[1...6].reversed().map { hex2($0).uppercased() }.joined(separator: ":")
            position = 7
        }
        var payload = Array(serviceData[position...])
        var counter: UInt32? = nil
        var retransmission = false
        if info.encrypted {
            guard let key else { return .failure(.encryptedWithoutKey) }
            guard payload.count >= 2 + 4 + 4 else { return .failure(.encryptedTooShort(serviceData.count)) }
            let counterBytes = Array(payload[(payload.count - 8)..<(payload.count - 4)])
            let nonce = macBytes(senderMAC) + [0xD2, 0xFC, first] + counterBytes
            guard let plain = decrypt(key, nonce, Array(payload[..<(payload.count - 8)]), Array(payload.suffix(4))) else {
                return .failure(.authenticationFailed)
            }
            let c = counterBytes.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
            if let last = history.lastCounter {
                let ahead = c &- last
                if ahead == 0 { retransmission = true } else if ahead >= 1 << 31 { return .failure(.counterNotNewer(counter: c, last: last)) }
            }
            counter = c
            payload = plain
        } else if key != nil {
            return .failure(.plaintextFromKeyedDevice)
        }
        var packet: BTHomePacket
        switch objects(payload, info: info, mac: senderMAC) {
        case .failure(let e): return .failure(e)
        case .success(let p): packet = p
        }
        let sameAsLast = serviceData == history.lastAdvertisement
        if let id = packet.packetID, let last = history.lastPacketID, let lastAt = history.lastAcceptedAt, within4s(lastAt, time) {
            let ahead = id &- last
            if ahead == 0 { return .failure(.duplicatePacketID(id)) }
            if ahead >= 64 { return .failure(.olderPacketID(id, last: last)) }
        } else if let id = packet.packetID, id == history.lastPacketID, sameAsLast {
            // The same packet after a pause: values stand, events already fired. The same id
            // with other bytes is another packet (ids restarted, or came round unheard): it fires.
            retransmission = true
        }
        if counter == nil, packet.packetID == nil, sameAsLast, let first = history.sameSince, within4s(first, time) {
            retransmission = true
        }
        if !sameAsLast || (!packet.events.isEmpty && !retransmission) {
            history.lastAdvertisement = serviceData
            history.sameSince = time
        }
        packet.counter = counter
        packet.isRetransmission = retransmission
        if retransmission { packet.events = [] }
        if let counter, !retransmission || history.lastCounter == nil { history.lastCounter = counter }
        if let id = packet.packetID { history.lastPacketID = id }
        history.lastAcceptedAt = time
        return .success(packet)
    }

    static func within4s(_ earlier: WallTime, _ time: WallTime) -> Bool {
        let elapsed = time - earlier
        return elapsed >= .zero && elapsed <= .seconds(4)
    }

    /// `54:48:E6:8F:80:A5` → `[0x54, 0x48, 0xE6, 0x8F, 0x80, 0xA5]`
    static func macBytes(_ mac: String) -> [UInt8] {
        mac.split(separator: ":").compactMap { UInt8($0, radix: 16) }
    }

    /// Walks `[id][value]...`: stops at an unknown id or a cut-short object, keeping what came before.
    static func objects(_ payload: [UInt8], info: BTHomeDeviceInfo, mac: String) -> Result<BTHomePacket, BTHomeRejection> {
        var found: [(BTHomeObjectType, BTHomeValue?)] = []
        var packetID: UInt8? = nil
        var i = 0
        while i < payload.count {
            let id = payload[i]
            guard let type = BTHomeObjects.table[id] else {
                if found.isEmpty && packetID == nil { return .failure(.unknownFirstObject(id)) }
                break
            }
            var start = i + 1
            var length = type.length
            if type.kind == .text || type.kind == .raw {
                guard start < payload.count else { break }
                length = Int(payload[start])
                start += 1
            }
            guard start + length <= payload.count else {
                if found.isEmpty && packetID == nil { return .failure(.truncatedFirstObject(id)) }
                break
            }
            let bytes = Array(payload[start..<(start + length)])
            i = start + length
            if id == 0x00 { packetID = bytes[0] }
            if length == 0 { continue }  // a zero-length text or raw object carries nothing
            found.append((type, value(type, bytes)))
        }
        return .success(named(found, packetID: packetID, info: info, mac: mac))
    }

    static func value(_ type: BTHomeObjectType, _ bytes: [UInt8]) -> BTHomeValue? {
        func unsigned() -> UInt64 { bytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) } }
        switch type.kind {
        case .sensor:
            var raw = Int64(bitPattern: unsigned())
            if type.signed {
                let shift = Int64(64 - 8 * bytes.count)
                raw = (raw << shift) >> shift
            }
            let scaled = Double(raw) * type.factor
            let decimals = type.decimals
            var p = 1.0
            for _ in 0..<decimals { p *= 10 }
            return .number((scaled * p).rounded() / p, decimals: decimals)
        case .binary:
            return .flag(bytes[0] != 0)
        case .button:
            return BTHomeObjects.buttonEvents[bytes[0]].map(BTHomeValue.event)
        case .dimmer:
            return BTHomeObjects.dimmerEvents[bytes[0]].map { .dimmer($0, steps: Int(bytes[1])) }
        case .text:
            return String(validating: bytes, as: UTF8.self).map(BTHomeValue.text)
        case .raw:
            return .raw(bytes)
        case .timestamp:
            return .timestamp(WallTime(secondsSinceEpoch: Int64(unsigned())))
        case .deviceInfo:
            return nil
        }
    }

    /// Names repeated properties `name_1`, `name_2`, ... in order of appearance; a button that
    /// reports "none" still holds its number, so `3A00 3A01` is button 2 pressed.
    static func named(_ found: [(BTHomeObjectType, BTHomeValue?)], packetID: UInt8?, info: BTHomeDeviceInfo, mac: String) -> BTHomePacket {
        var packet = BTHomePacket(info: info, mac: mac, counter: nil, packetID: packetID, sensors: [], binary: [], events: [], isRetransmission: false)
        var totals: [String: Int] = [:]
        for (type, _) in found where type.kind != .deviceInfo { totals[group(type) + type.name, default: 0] += 1 }
        var seen: [String: Int] = [:]
        for (type, value) in found where type.kind != .deviceInfo {
            let key = group(type) + type.name
            seen[key, default: 0] += 1
            let name = totals[key]! > 1 ? "\(type.name)_\(seen[key]!)" : type.name
            switch (type.kind, value) {
            case (_, nil): break  // an invalid value drops only itself
            case (.binary, .flag(let on)?): packet.binary.append((name, on))
            case (.button, let v?), (.dimmer, let v?): packet.events.append((name, v))
            case (_, let v?): packet.sensors.append((name, v))
            }
        }
        return packet
    }

    static func group(_ type: BTHomeObjectType) -> String {
        switch type.kind {
        case .binary: return "b:"
        case .button, .dimmer: return "e:"
        default: return "s:"
        }
    }
}
