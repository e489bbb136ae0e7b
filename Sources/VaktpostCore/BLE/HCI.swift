/// HCI events as a raw HCI socket or a btsnoop capture delivers them (research/ble.md §1.4).
/// Pure: bytes in, advertising reports or a typed reason out. Every length is checked against
/// the event's own, because these bytes come from the air.

public enum BLEAddressType: UInt8, Sendable {
    case `public` = 0x00
    case random = 0x01
    case publicIdentity = 0x02
    case randomIdentity = 0x03
    case anonymous = 0xFF
}

/// One advertisement as the controller reported it.
public struct AdvertisingReport: Equatable, Sendable {
    /// Printed order, upper case: `A4:C1:38:8D:18:B2`.
    public var address: String
    public var addressType: BLEAddressType
    /// dBm; nil when the controller says it is not available (127).
    public var rssi: Int?
    /// Came from an extended report (subevent 0x0D).
    public var extended: Bool
    /// The advertising data: AD structures.
    public var data: [UInt8]
}

public enum HCIError: Error, Equatable, Sendable, CustomStringConvertible {
    case tooShort
    case notAnEvent(UInt8)
    case lengthMismatch(declared: Int, actual: Int)
    case reportOverrun(report: Int)

    public var description: String {
        switch self {
        case .tooShort: return "the HCI event is shorter than its header"
        case .notAnEvent(let t): return "H4 packet type 0x\(hex2(t)) is not an event"
        case .lengthMismatch(let d, let a): return "the event says \(d) parameter bytes but carries \(a)"
        case .reportOverrun(let n): return "advertising report \(n) runs past the end of the event"
        }
    }
}

public enum HCI {
    public static let leMetaEvent: UInt8 = 0x3E
    public static let legacyReport: UInt8 = 0x02
    public static let extendedReport: UInt8 = 0x0D

    /// A packet read from a raw HCI socket starts with its H4 type; an event's is 0x04.
    public static func eventFromH4(_ packet: [UInt8]) -> Result<[UInt8], HCIError> {
        guard let type = packet.first else { return .failure(.tooShort) }
        guard type == 0x04 else { return .failure(.notAnEvent(type)) }
        return .success(Array(packet.dropFirst()))
    }

    /// The advertising reports in one event (`3E len subevent n reports...`, no H4 byte). Other
    /// events yield no reports. Extended reports whose data is incomplete or truncated are
    /// skipped: BTHome advertises legacy PDUs, one report each.
    public static func advertisingReports(_ event: [UInt8]) -> Result<[AdvertisingReport], HCIError> {
        let bytes = event[...]
        guard bytes.count >= 2 else { return .failure(.tooShort) }
        let code = bytes[bytes.startIndex]
        let declared = Int(bytes[bytes.startIndex + 1])
        let params = bytes.dropFirst(2)
        guard params.count == declared else { return .failure(.lengthMismatch(declared: declared, actual: params.count)) }
        guard code == leMetaEvent, let subevent = params.first else { return .success([]) }
        guard subevent == legacyReport || subevent == extendedReport else { return .success([]) }
        guard params.count >= 2 else { return .failure(.tooShort) }
        let count = Int(params[params.startIndex + 1])
        var i = params.startIndex + 2
        var reports: [AdvertisingReport] = []
        for n in 0..<count {
            if subevent == legacyReport {
                // event type, address type, address[6], data length, data, rssi
                guard i + 9 <= params.endIndex else { return .failure(.reportOverrun(report: n + 1)) }
                let length = Int(params[i + 8])
                guard i + 9 + length + 1 <= params.endIndex else { return .failure(.reportOverrun(report: n + 1)) }
                let rssi = Int8(bitPattern: params[i + 9 + length])
                reports.append(AdvertisingReport(
                    address: address(params[(i + 2)..<(i + 8)]), addressType: BLEAddressType(rawValue: params[i + 1]) ?? .random,
                    rssi: rssi == 127 ? nil : Int(rssi), extended: false, data: Array(params[(i + 9)..<(i + 9 + length)])))
                i += 9 + length + 1
            } else {
                // event type u16, address type, address[6], phys, sid, tx power, rssi, interval u16, direct addr[7], length, data
                guard i + 24 <= params.endIndex else { return .failure(.reportOverrun(report: n + 1)) }
                let length = Int(params[i + 23])
                guard i + 24 + length <= params.endIndex else { return .failure(.reportOverrun(report: n + 1)) }
                let eventType = UInt16(params[i]) | UInt16(params[i + 1]) << 8
                let dataStatus = (eventType >> 5) & 0x3
                let rssi = Int8(bitPattern: params[i + 13])
                if dataStatus == 0 {
                    reports.append(AdvertisingReport(
                        address: address(params[(i + 3)..<(i + 9)]), addressType: BLEAddressType(rawValue: params[i + 2]) ?? .random,
                        rssi: rssi == 127 ? nil : Int(rssi), extended: true, data: Array(params[(i + 24)..<(i + 24 + length)])))
                }
                i += 24 + length
            }
        }
        return .success(reports)
    }

    /// Little-endian on the wire, printed most significant byte first.
    static func address(_ bytes: ArraySlice<UInt8>) -> String {
        bytes.reversed().map { hex2($0).uppercased() }.joined(separator: ":")
    }

    /// An address as a technician types it (`3c:2e:f5:12:34:56`) in the form reports carry
    /// (`3C:2E:F5:12:34:56`); nil when it is not six colon-separated bytes.
    public static func canonicalAddress(_ text: String) -> String? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6, parts.allSatisfy({ $0.count == 2 && UInt8($0, radix: 16) != nil }) else { return nil }
        return text.uppercased()
    }
}

/// The AD structures of one advertisement (research/ble.md §1.5).
public struct AdvertisingData: Equatable, Sendable {
    public var flags: UInt8?
    public var localName: String?
    /// 16-bit service UUID → its data (the bytes after the UUID).
    public var serviceData: [UInt16: [UInt8]] = [:]
    /// Company id → manufacturer data (after the id).
    public var manufacturerData: [UInt16: [UInt8]] = [:]
    /// A length ran past the end: what came before is kept.
    public var malformed = false

    public static let bthomeUUID: UInt16 = 0xFCD2

    public var bthome: [UInt8]? { serviceData[AdvertisingData.bthomeUUID] }

    public init(_ data: [UInt8]) {
        var i = 0
        while i < data.count {
            let length = Int(data[i])
            if length == 0 { break }  // terminator or padding
            guard i + 1 + length <= data.count else {
                malformed = true
                break
            }
            let type = data[i + 1]
            let body = Array(data[(i + 2)..<(i + 1 + length)])
            switch type {
            case 0x01: flags = body.first
            case 0x08, 0x09: localName = String(validating: body, as: UTF8.self) ?? localName
            case 0x16 where body.count >= 2: serviceData[UInt16(body[0]) | UInt16(body[1]) << 8] = Array(body.dropFirst(2))
            case 0xFF where body.count >= 2: manufacturerData[UInt16(body[0]) | UInt16(body[1]) << 8] = Array(body.dropFirst(2))
            default: break
            }
            i += 1 + length
        }
    }
}
