/// A moment on the wall clock (`CLOCK_REALTIME`), as nanoseconds since the Unix epoch in UTC.
///
/// The core never reads a clock: every instant is handed in. Local time is a rendering of a
/// `WallTime` through `TimeZoneRules`, never a separate kind of moment.
public struct WallTime: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var nanosecondsSinceEpoch: Int64

    public init(nanosecondsSinceEpoch: Int64) {
        self.nanosecondsSinceEpoch = nanosecondsSinceEpoch
    }

    public init(secondsSinceEpoch: Int64, nanoseconds: Int64 = 0) {
        self.nanosecondsSinceEpoch = secondsSinceEpoch * 1_000_000_000 + nanoseconds
    }

    /// Whole seconds, rounded towards the past (so -0.5 s is second -1).
    public var secondsSinceEpoch: Int64 { floorDiv(nanosecondsSinceEpoch, 1_000_000_000) }

    /// The nanoseconds within `secondsSinceEpoch`, always 0..<1e9.
    public var nanosecondOfSecond: Int64 { floorMod(nanosecondsSinceEpoch, 1_000_000_000) }

    public var millisecondsSinceEpoch: Int64 { floorDiv(nanosecondsSinceEpoch, 1_000_000) }

    public static func < (a: WallTime, b: WallTime) -> Bool {
        a.nanosecondsSinceEpoch < b.nanosecondsSinceEpoch
    }

    public static func + (t: WallTime, d: Duration) -> WallTime {
        WallTime(nanosecondsSinceEpoch: t.nanosecondsSinceEpoch + d.nanoseconds)
    }

    public static func - (t: WallTime, d: Duration) -> WallTime {
        WallTime(nanosecondsSinceEpoch: t.nanosecondsSinceEpoch - d.nanoseconds)
    }

    public static func - (a: WallTime, b: WallTime) -> Duration {
        .nanoseconds(a.nanosecondsSinceEpoch - b.nanosecondsSinceEpoch)
    }

    public var description: String { RFC3339.format(self, utcOffsetSeconds: 0, fractionDigits: 3) }
}

extension Duration {
    /// The duration as whole nanoseconds, saturating (about ±292 years) rather than trapping.
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflow2 ? (whole < 0 ? .min : .max) : sum
    }
}

func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

func floorMod(_ a: Int64, _ b: Int64) -> Int64 {
    a - floorDiv(a, b) * b
}

/// A date and time on the proleptic Gregorian calendar with no zone attached.
public struct CivilDateTime: Hashable, Comparable, Sendable {
    public var year: Int
    public var month: Int
    public var day: Int
    public var hour: Int
    public var minute: Int
    public var second: Int
    public var nanosecond: Int

    public init(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0, nanosecond: Int = 0) {
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
        self.nanosecond = nanosecond
    }

    /// Reads this civil time as if it were UTC.
    public var asUTC: WallTime {
        let days = CivilDateTime.daysFromCivil(year: year, month: month, day: day)
        let seconds = days * 86_400 + Int64(hour * 3600 + minute * 60 + second)
        return WallTime(secondsSinceEpoch: seconds, nanoseconds: Int64(nanosecond))
    }

    /// The civil time of `time` shifted by `utcOffsetSeconds`.
    public init(_ time: WallTime, utcOffsetSeconds: Int) {
        let seconds = time.secondsSinceEpoch + Int64(utcOffsetSeconds)
        let days = floorDiv(seconds, 86_400)
        let secondOfDay = Int(seconds - days * 86_400)
        let (y, m, d) = CivilDateTime.civilFromDays(days)
        self.init(
            year: y, month: m, day: d,
            hour: secondOfDay / 3600, minute: secondOfDay / 60 % 60, second: secondOfDay % 60,
            nanosecond: Int(time.nanosecondOfSecond))
    }

    /// Day of the week, 0 = Sunday (as POSIX TZ rules and `struct tm` count).
    public var weekday: Int {
        Int(floorMod(CivilDateTime.daysFromCivil(year: year, month: month, day: day) + 4, 7))
    }

    public var secondOfDay: Int { hour * 3600 + minute * 60 + second }

    public static func < (a: CivilDateTime, b: CivilDateTime) -> Bool {
        (a.year, a.month, a.day, a.hour, a.minute) < (b.year, b.month, b.day, b.hour, b.minute)
            || ((a.year, a.month, a.day, a.hour, a.minute) == (b.year, b.month, b.day, b.hour, b.minute)
                && (a.second, a.nanosecond) < (b.second, b.nanosecond))
    }

    public static func isLeapYear(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    public static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days_from_civil / civil_from_days: exact for every proleptic Gregorian date.
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = floorDiv(y, 400)
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ z0: Int64) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return (Int(y), Int(m), Int(d))
    }
}
