/// A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then randomness. It names an event for
/// life, plays the role of SCAIP's `ref`, and sorts by creation time.
public struct EventID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The randomness comes from the caller so that replays and tests are reproducible.
    public static func v7(unixMilliseconds: Int64, using rng: inout some RandomNumberGenerator) -> EventID {
        let ms = UInt64(max(0, unixMilliseconds)) & 0xFFFF_FFFF_FFFF
        let randA = rng.next() & 0x0FFF
        let randB = rng.next() & 0x3FFF_FFFF_FFFF_FFFF
        return EventID(high: ms << 16 | 0x7000 | randA, low: 0x8000_0000_0000_0000 | randB)
    }

    public var version: Int { Int(high >> 12 & 0xF) }
    public var unixMilliseconds: Int64 { Int64(high >> 16) }

    public static func < (a: EventID, b: EventID) -> Bool { (a.high, a.low) < (b.high, b.low) }

    /// `0190f3c1-7b2e-7a44-9d0e-5c1f2a9b8e01`
    public var description: String {
        let hex = EventID.hex(high, 16) + EventID.hex(low, 16)
        let c = Array(hex)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20]) + "-"
            + String(c[20..<32])
    }

    public init?(_ text: String) {
        let hex = text.filter { $0 != "-" }
        guard text.count == 36, hex.count == 32, let h = UInt64(hex.prefix(16), radix: 16),
            let l = UInt64(hex.suffix(16), radix: 16)
        else { return nil }
        high = h
        low = l
    }

    private static func hex(_ v: UInt64, _ width: Int) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: width - s.count) + s
    }
}
