/// btsnoop captures (research/ble.md §1.6): what `btmon -w` writes (datalink 2001, Linux
/// monitor) and the classic HCI UART/H4 variant (datalink 1002, e.g. Android's
/// `btsnoop_hci.log`). A technician replays one to see what the agent would have made of it;
/// the tests use them as real byte streams.
public struct BTSnoopRecord: Equatable, Sendable {
    public var time: WallTime
    /// The HCI event, without the H4 type byte.
    public var event: [UInt8]
}

public enum BTSnoopError: Error, Equatable, Sendable, CustomStringConvertible {
    case notBTSnoop
    case unsupportedVersion(UInt32)
    case unsupportedDatalink(UInt32)
    case truncatedRecord(offset: Int)
    case oversizedRecord(offset: Int, length: Int)
    case impossibleTime(offset: Int)

    public var description: String {
        switch self {
        case .notBTSnoop: return "not a btsnoop file (no \"btsnoop\" header)"
        case .unsupportedVersion(let v): return "btsnoop version \(v); only version 1 exists"
        case .unsupportedDatalink(let d): return "btsnoop datalink \(d); use a capture from `btmon -w` (2001) or an H4 log (1002)"
        case .truncatedRecord(let o): return "the capture ends inside the record at byte \(o)"
        case .oversizedRecord(let o, let n): return "the record at byte \(o) claims \(n) bytes, more than any HCI packet"
        case .impossibleTime(let o): return "the record at byte \(o) has a timestamp outside any real capture"
        }
    }
}

public enum BTSnoop {
    /// µs between 0000-01-01 and the Unix epoch, as btsnoop counts.
    static let epochOffsetMicroseconds: Int64 = 0x00DC_DDB3_0F2F_8000

    /// Every HCI event in the capture, with its time. Other records (commands, ACL, notes) are skipped.
    public static func events(_ bytes: [UInt8]) -> Result<[BTSnoopRecord], BTSnoopError> {
        func be32(_ at: Int) -> UInt32 { bytes[at..<(at + 4)].reduce(0) { $0 << 8 | UInt32($1) } }
        guard bytes.count >= 16, bytes.starts(with: Array("btsnoop\0".utf8)) else { return .failure(.notBTSnoop) }
        let version = be32(8)
        guard version == 1 else { return .failure(.unsupportedVersion(version)) }
        let datalink = be32(12)
        guard datalink == 1002 || datalink == 2001 else { return .failure(.unsupportedDatalink(datalink)) }
        var out: [BTSnoopRecord] = []
        var at = 16
        while at < bytes.count {
            guard at + 24 <= bytes.count else { return .failure(.truncatedRecord(offset: at)) }
            let included = Int(be32(at + 4))
            let flags = be32(at + 8)
            let stamp = Int64(bitPattern: UInt64(be32(at + 16)) << 32 | UInt64(be32(at + 20)))
            guard included <= 1490 else { return .failure(.oversizedRecord(offset: at, length: included)) }
            guard at + 24 + included <= bytes.count else { return .failure(.truncatedRecord(offset: at)) }
            let data = Array(bytes[(at + 24)..<(at + 24 + included)])
            let (micro, early) = stamp.subtractingReportingOverflow(epochOffsetMicroseconds)
            let (nanos, late) = micro.multipliedReportingOverflow(by: 1000)
            guard !early, !late else { return .failure(.impossibleTime(offset: at)) }
            let time = WallTime(nanosecondsSinceEpoch: nanos)
            if datalink == 2001 {
                if flags & 0xFFFF == 3 { out.append(BTSnoopRecord(time: time, event: data)) }  // opcode 3: event
            } else if data.first == 0x04 {
                out.append(BTSnoopRecord(time: time, event: Array(data.dropFirst())))
            }
            at += 24 + included
        }
        return .success(out)
    }

    /// Writes a monitor-format (2001) capture: for fixtures and for saving what `scan` heard.
    public static func write(_ records: [BTSnoopRecord]) -> [UInt8] {
        func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        var out = Array("btsnoop\0".utf8) + be32(1) + be32(2001)
        for r in records {
            let stamp = UInt64(bitPattern: r.time.nanosecondsSinceEpoch / 1000 + epochOffsetMicroseconds)
            out += be32(UInt32(r.event.count)) + be32(UInt32(r.event.count)) + be32(3) + be32(0)
            out += be32(UInt32(stamp >> 32)) + be32(UInt32(stamp & 0xFFFF_FFFF)) + r.event
        }
        return out
    }
}
