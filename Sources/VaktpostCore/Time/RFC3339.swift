/// RFC 3339 timestamps: the only textual time format the agent writes or reads.
public enum RFC3339 {
    /// `2026-03-29T03:20:00+02:00`; with `fractionDigits` > 0 a fraction follows the seconds.
    /// An offset of zero is written `+00:00`, never `Z`, so every line a technician reads
    /// carries its offset in the same shape.
    public static func format(_ time: WallTime, utcOffsetSeconds: Int, fractionDigits: Int = 0) -> String {
        let c = CivilDateTime(time, utcOffsetSeconds: utcOffsetSeconds)
        var s = pad(c.year, 4) + "-" + pad(c.month, 2) + "-" + pad(c.day, 2)
        s += "T" + pad(c.hour, 2) + ":" + pad(c.minute, 2) + ":" + pad(c.second, 2)
        if fractionDigits > 0 {
            let digits = min(fractionDigits, 9)
            var divisor = 1
            for _ in 0..<(9 - digits) { divisor *= 10 }
            s += "." + pad(c.nanosecond / divisor, digits)
        }
        let sign = utcOffsetSeconds < 0 ? "-" : "+"
        let abs = Swift.abs(utcOffsetSeconds)
        s += sign + pad(abs / 3600, 2) + ":" + pad(abs / 60 % 60, 2)
        return s
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`. Returns the instant and the offset it was written with.
    public static func parse(_ text: String) -> (time: WallTime, utcOffsetSeconds: Int)? {
        let b = Array(text.utf8)
        guard b.count >= 20 else { return nil }
        func num(_ from: Int, _ len: Int) -> Int? {
            guard from + len <= b.count else { return nil }
            var v = 0
            for i in from..<(from + len) {
                let c = b[i]
                guard c >= 0x30, c <= 0x39 else { return nil }
                v = v * 10 + Int(c - 0x30)
            }
            return v
        }
        guard let year = num(0, 4), b[4] == 0x2D, let month = num(5, 2), b[7] == 0x2D, let day = num(8, 2),
            b[10] == 0x54 || b[10] == 0x74 || b[10] == 0x20,
            let hour = num(11, 2), b[13] == 0x3A, let minute = num(14, 2), b[16] == 0x3A, let second = num(17, 2)
        else { return nil }
        // WallTime holds nanoseconds in 64 bits (1678-2262); the agent has no use for years outside this.
        guard (1900...2200).contains(year), (1...12).contains(month), (1...CivilDateTime.daysInMonth(year: year, month: month)).contains(day),
            hour < 24, minute < 60, second < 60
        else { return nil }
        var i = 19
        var nanos = 0
        if i < b.count, b[i] == 0x2E {
            i += 1
            var digits = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                if digits < 9 { nanos = nanos * 10 + Int(b[i] - 0x30) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 9) { nanos *= 10 }
        }
        guard i < b.count else { return nil }
        var offset = 0
        if b[i] == 0x5A || b[i] == 0x7A {
            i += 1
        } else if b[i] == 0x2B || b[i] == 0x2D {
            guard let oh = num(i + 1, 2), i + 3 < b.count, b[i + 3] == 0x3A, let om = num(i + 4, 2), oh < 24, om < 60
            else { return nil }
            offset = (oh * 3600 + om * 60) * (b[i] == 0x2D ? -1 : 1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let civil = CivilDateTime(year: year, month: month, day: day, hour: hour, minute: minute, second: second, nanosecond: nanos)
        return (civil.asUTC - .seconds(offset), offset)
    }

    static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}
