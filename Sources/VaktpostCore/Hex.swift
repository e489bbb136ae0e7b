/// Hex text to bytes and back: keys in the config, frames on the command line.
public enum Hex {
    /// `231d39c1...` → bytes; nil unless it is an even number of hex digits (at least two).
    /// Digit by digit: `UInt8(_:radix:)` takes a sign, so a sender `"+1825DAB"` passed the
    /// config check and matched no telegram.
    public static func bytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard !digits.isEmpty, digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2)
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let high = value(digits[i]), let low = value(digits[i + 1]) else { return nil }
            out.append(high << 4 | low)
        }
        return out
    }

    /// Whether `text` is nothing but hex digits (at least one).
    public static func isDigits(_ text: some StringProtocol) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { value($0) != nil }
    }

    /// Lower-case, two digits a byte.
    public static func string(_ bytes: [UInt8]) -> String { bytes.map(hex2).joined() }

    /// The value of one hex digit given as a UTF-8 byte (either case); nil for any other byte.
    public static func value(_ digit: UInt8) -> UInt8? {
        switch digit {
        case 0x30...0x39: return digit - 0x30
        case 0x41...0x46: return digit - 0x41 + 10
        case 0x61...0x66: return digit - 0x61 + 10
        default: return nil
        }
    }

    /// The lower-case digit, as a UTF-8 byte, for the low four bits of `nibble`: for writers that
    /// fill bytes themselves (event ids, JSON's \u escapes).
    public static func digit(_ nibble: some BinaryInteger) -> UInt8 {
        let digits: StaticString = "0123456789abcdef"
        return digits.utf8Start[Int(nibble & 0xF)]
    }
}

/// FNV-1a, 64 bits: a cheap content fingerprint for config versions and ETags (not a defence
/// against anyone choosing the content).
public enum ContentHash {
    public static func fnv1a(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }
}
