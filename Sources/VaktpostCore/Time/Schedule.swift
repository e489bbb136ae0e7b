/// Why a piece of text is not the value it should be, in words a technician can act on.
public struct ValueError: Error, Equatable, Sendable {
    public var problem: String
    public var hint: String

    public init(_ problem: String, hint: String) {
        self.problem = problem
        self.hint = hint
    }
}

/// Durations as technicians write them: `30s`, `30m`, `2h`, `1h30m`, `0s`.
public enum DurationText {
    /// Longer than any supervision or rule time makes sense for, and far from overflowing time arithmetic.
    public static let maximum: Int64 = 30 * 86_400

    public static let hint = "write a whole number followed by s, m or h, e.g. \"30s\", \"30m\", \"2h\" or \"1h30m\""

    public static func parse(_ text: String) -> Result<Duration, ValueError> {
        let bad = { (why: String) in Result<Duration, ValueError>.failure(ValueError(why, hint: hint)) }
        guard !text.isEmpty else { return bad("an empty duration") }
        var seconds: Int64 = 0
        var number: Int64? = nil
        var lastUnitRank = Int.max
        for ch in text {
            if let digit = ch.wholeNumberValue, ch.isASCII {
                let (n, overflow) = (number ?? 0).multipliedReportingOverflow(by: 10)
                guard !overflow, n <= 1_000_000_000 else { return bad("\"\(text)\" is too long a duration") }
                number = n + Int64(digit)
                continue
            }
            let unit: (seconds: Int64, rank: Int)
            switch ch {
            case "h": unit = (3600, 2)
            case "m": unit = (60, 1)
            case "s": unit = (1, 0)
            case " ": return bad("\"\(text)\" has a space in it")
            default: return bad("\"\(text)\" has the unit '\(ch)', which is not s, m or h")
            }
            guard let n = number else { return bad("\"\(text)\" has a unit with no number before it") }
            guard unit.rank < lastUnitRank else { return bad("\"\(text)\" repeats a unit or has them out of order") }
            lastUnitRank = unit.rank
            seconds += n * unit.seconds
            number = nil
        }
        if number != nil { return bad("\"\(text)\" has no unit after its last number") }
        guard seconds <= maximum else { return bad("\"\(text)\" is longer than 30 days") }
        return .success(.seconds(seconds))
    }

    /// The shortest text that parses back to `d` (whole seconds): `1h30m`, `45s`, `0s`.
    public static func format(_ d: Duration) -> String {
        var s = d.components.seconds
        guard s > 0 else { return "0s" }
        var out = ""
        if s >= 3600 { out += "\(s / 3600)h"; s %= 3600 }
        if s >= 60 { out += "\(s / 60)m"; s %= 60 }
        if s > 0 { out += "\(s)s" }
        return out
    }
}

/// A wall-clock time of day, to the minute: `22:00`.
public struct TimeOfDay: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Minutes after local midnight, 0..<1440.
    public let minuteOfDay: Int

    public init?(hour: Int, minute: Int) {
        guard (0..<24).contains(hour), (0..<60).contains(minute) else { return nil }
        minuteOfDay = hour * 60 + minute
    }

    public var hour: Int { minuteOfDay / 60 }
    public var minute: Int { minuteOfDay % 60 }

    public static func < (a: TimeOfDay, b: TimeOfDay) -> Bool { a.minuteOfDay < b.minuteOfDay }

    public var description: String { RFC3339.pad(hour, 2) + ":" + RFC3339.pad(minute, 2) }

    public static let hint = "write a 24-hour time HH:MM between 00:00 and 23:59, e.g. \"07:00\""

    public static func parse(_ text: String) -> Result<TimeOfDay, ValueError> {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ $0.count == 2 && $0.allSatisfy { $0.isASCII && $0.isNumber } }),
            let h = Int(parts[0]), let m = Int(parts[1])
        else { return .failure(ValueError("\"\(text)\" is not a time of day", hint: hint)) }
        guard h < 24 else { return .failure(ValueError("hour \(h) is out of range", hint: hint)) }
        guard m < 60 else { return .failure(ValueError("minute \(m) is out of range", hint: hint)) }
        return .success(TimeOfDay(hour: h, minute: m)!)
    }
}

/// A daily window in local time, half-open `[start, end)`, that may cross midnight: `22:00-07:00`.
public struct DailyWindow: Hashable, Sendable, CustomStringConvertible {
    public let start: TimeOfDay
    public let end: TimeOfDay

    public init?(start: TimeOfDay, end: TimeOfDay) {
        guard start != end else { return nil }
        self.start = start
        self.end = end
    }

    public var crossesMidnight: Bool { end < start }

    /// Length of one occurrence on a day with no clock change.
    public var nominalLength: Duration {
        let minutes = crossesMidnight ? 1440 - start.minuteOfDay + end.minuteOfDay : end.minuteOfDay - start.minuteOfDay
        return .seconds(minutes * 60)
    }

    /// Whether a local time of day (in seconds after midnight) lies inside the window.
    public func contains(secondOfDay: Int) -> Bool {
        let s = start.minuteOfDay * 60
        let e = end.minuteOfDay * 60
        return crossesMidnight ? (secondOfDay >= s || secondOfDay < e) : (secondOfDay >= s && secondOfDay < e)
    }

    public var description: String { "\(start)-\(end)" }

    public static let hint = "write two 24-hour times HH:MM-HH:MM, e.g. \"22:00-07:00\" (it may cross midnight)"

    public static func parse(_ text: String) -> Result<DailyWindow, ValueError> {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            return .failure(ValueError("it is not two times joined by '-'", hint: hint))
        }
        var times: [TimeOfDay] = []
        for part in parts {
            switch TimeOfDay.parse(String(part)) {
            case .success(let t): times.append(t)
            case .failure(let e): return .failure(ValueError(e.problem, hint: hint))
            }
        }
        guard let window = DailyWindow(start: times[0], end: times[1]) else {
            return .failure(ValueError("it starts and ends at the same time", hint: hint))
        }
        return .success(window)
    }
}
