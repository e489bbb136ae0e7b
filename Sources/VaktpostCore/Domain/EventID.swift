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

    /// `0190f3c1-7b2e-7a44-9d0e-5c1f2a9b8e01`. Written byte by byte into the string's own storage:
    /// a drain formats every event's id to settle it and the receiver parses each one, so this
    /// runs hundreds of thousands of times after an outage.
    public var description: String {
        String(unsafeUninitializedCapacity: 36) { out in
            var at = 0
            func put(_ v: UInt64, bits: Int) {
                var shift = bits - 4
                while shift >= 0 {
                    out[at] = Hex.digit(v >> UInt64(shift))
                    at += 1
                    shift -= 4
                }
            }
            func dash() { out[at] = 0x2D; at += 1 }
            put(high >> 32, bits: 32); dash()
            put(high >> 16, bits: 16); dash()
            put(high, bits: 16); dash()
            put(low >> 48, bits: 16); dash()
            put(low, bits: 48)
            return at
        }
    }

    /// The canonical form only: 8-4-4-4-12 hex digits (either case), dashes where RFC 9562 puts
    /// them. An id the receiver accepts is one the hub could have written.
    public init?(_ text: String) {
        var parsed: (UInt64, UInt64)?
        var text = text
        text.withUTF8 { bytes in
            guard bytes.count == 36 else { return }
            var high: UInt64 = 0, low: UInt64 = 0, digits = 0
            for (i, b) in bytes.enumerated() {
                if i == 8 || i == 13 || i == 18 || i == 23 {
                    guard b == 0x2D else { return }
                    continue
                }
                guard let v = Hex.value(b) else { return }
                if digits < 16 { high = high << 4 | UInt64(v) } else { low = low << 4 | UInt64(v) }
                digits += 1
            }
            parsed = (high, low)
        }
        guard let (h, l) = parsed else { return nil }
        high = h
        low = l
    }
}
