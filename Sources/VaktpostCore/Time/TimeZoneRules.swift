/// The hub's time zone, built from TZif bytes (RFC 8536) or a POSIX TZ string.
///
/// FoundationEssentials cannot load zones without ICU, and full Foundation is banned from the
/// agent, so the core reads the system tz database itself: the Agent hands it the bytes of
/// `/usr/share/zoneinfo/<id>`, this type answers "what offset is in force at this instant" and
/// "which instants carry this local time".
public struct TimeZoneRules: Sendable, Hashable {
    public let identifier: String
    /// Transition instants in UTC seconds, ascending, and the offset that starts at each.
    let transitions: [Int64]
    let transitionOffsets: [Int]
    /// Offset before the first transition (RFC 8536 §3.2: local time type 0).
    let initialOffset: Int
    /// Rule for instants after the last transition (the TZif footer), if any.
    let footer: PosixTimeZone?

    public static let utc = TimeZoneRules(
        identifier: "UTC", transitions: [], transitionOffsets: [], initialOffset: 0, footer: nil)

    init(identifier: String, transitions: [Int64], transitionOffsets: [Int], initialOffset: Int, footer: PosixTimeZone?) {
        self.identifier = identifier
        self.transitions = transitions
        self.transitionOffsets = transitionOffsets
        self.initialOffset = initialOffset
        self.footer = footer
    }

    /// A zone given only by a POSIX TZ rule such as `CET-1CEST,M3.5.0,M10.5.0/3`.
    public init(identifier: String, posix: String) throws(TimeZoneError) {
        guard let rule = PosixTimeZone(posix) else { throw .badPosixRule(posix) }
        self.init(identifier: identifier, transitions: [], transitionOffsets: [], initialOffset: rule.standardOffset, footer: rule)
    }

    /// Offset from UTC in seconds (east positive) in force at `time`.
    public func utcOffset(at time: WallTime) -> Int {
        let t = time.secondsSinceEpoch
        if let last = transitions.last, t >= last, let footer {
            return footer.utcOffset(atUTCSeconds: t)
        }
        if transitions.isEmpty {
            return footer?.utcOffset(atUTCSeconds: t) ?? initialOffset
        }
        // Last transition at or before t.
        var lo = 0
        var hi = transitions.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if transitions[mid] <= t { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? initialOffset : transitionOffsets[lo - 1]
    }

    public func localTime(_ time: WallTime) -> CivilDateTime {
        CivilDateTime(time, utcOffsetSeconds: utcOffset(at: time))
    }

    /// RFC 3339 with the offset in force: `2026-03-29T03:20:00+02:00`.
    public func format(_ time: WallTime, fractionDigits: Int = 0) -> String {
        RFC3339.format(time, utcOffsetSeconds: utcOffset(at: time), fractionDigits: fractionDigits)
    }

    /// Every instant whose local time is `local`: none inside a spring-forward gap, two inside
    /// an autumn overlap, one otherwise. Ascending.
    public func instants(for local: CivilDateTime) -> [WallTime] {
        let naive = local.asUTC
        var offsets: [Int] = []
        for probe in [naive - .seconds(86_400), naive, naive + .seconds(86_400)] {
            let o = utcOffset(at: probe)
            if !offsets.contains(o) { offsets.append(o) }
        }
        var result: [WallTime] = []
        for o in offsets {
            let candidate = naive - .seconds(o)
            if utcOffset(at: candidate) == o, !result.contains(candidate) { result.append(candidate) }
        }
        return result.sorted()
    }

    /// Parses TZif version 1-4 bytes. Version 2+ files use their 64-bit block and footer.
    public init(tzif bytes: [UInt8], identifier: String) throws(TimeZoneError) {
        var reader = TZifReader(bytes: bytes)
        let v1 = try reader.header()
        if v1.version == 0 {
            let block = try reader.dataBlock(v1, timeSize: 4)
            self.init(identifier: identifier, block: block, footer: nil)
            return
        }
        try reader.skip(v1.dataLength(timeSize: 4))
        let v2 = try reader.header()
        let block = try reader.dataBlock(v2, timeSize: 8)
        let footerText = try reader.footer()
        var footer: PosixTimeZone? = nil
        if !footerText.isEmpty {
            guard let rule = PosixTimeZone(footerText) else { throw .badPosixRule(footerText) }
            footer = rule
        }
        self.init(identifier: identifier, block: block, footer: footer)
    }

    private init(identifier: String, block: TZifReader.Block, footer: PosixTimeZone?) {
        self.init(
            identifier: identifier,
            transitions: block.times,
            transitionOffsets: block.typeIndices.map { block.offsets[Int($0)] },
            initialOffset: block.offsets.first ?? 0,
            footer: footer)
    }
}

public enum TimeZoneError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated
    case notTZif
    case badCounts(String)
    case badPosixRule(String)

    public var description: String {
        switch self {
        case .truncated: return "the time zone file ends early; reinstall the tzdata package"
        case .notTZif: return "not a TZif time zone file; reinstall the tzdata package"
        case .badCounts(let what): return "the time zone file is inconsistent (\(what)); reinstall the tzdata package"
        case .badPosixRule(let rule): return "the POSIX TZ rule '\(rule)' cannot be read"
        }
    }
}

private struct TZifReader {
    struct Header {
        var version: UInt8
        var isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt: Int

        func dataLength(timeSize: Int) -> Int {
            timecnt * timeSize + timecnt + typecnt * 6 + charcnt + leapcnt * (timeSize + 4) + isstdcnt + isutcnt
        }
    }

    struct Block {
        var times: [Int64]
        var typeIndices: [UInt8]
        var offsets: [Int]
    }

    let bytes: [UInt8]
    var position = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func take(_ n: Int) throws(TimeZoneError) -> ArraySlice<UInt8> {
        guard n >= 0, position + n <= bytes.count else { throw .truncated }
        defer { position += n }
        return bytes[position..<(position + n)]
    }

    mutating func skip(_ n: Int) throws(TimeZoneError) { _ = try take(n) }

    mutating func int(_ size: Int) throws(TimeZoneError) -> Int64 {
        var v: UInt64 = 0
        for b in try take(size) { v = v << 8 | UInt64(b) }
        // Sign-extend from `size` bytes.
        let shift = UInt64(64 - size * 8)
        return Int64(bitPattern: v << shift) >> shift
    }

    mutating func header() throws(TimeZoneError) -> Header {
        guard try take(4).elementsEqual("TZif".utf8) else { throw .notTZif }
        let versionByte = try take(1).first!
        let version: UInt8 = versionByte == 0 ? 0 : versionByte - 0x30
        try skip(15)
        var counts: [Int] = []
        for _ in 0..<6 {
            let c = try int(4)
            guard c >= 0, c < 1 << 20 else { throw .badCounts("count \(c)") }
            counts.append(Int(c))
        }
        let h = Header(
            version: version, isutcnt: counts[0], isstdcnt: counts[1], leapcnt: counts[2],
            timecnt: counts[3], typecnt: counts[4], charcnt: counts[5])
        guard h.typecnt > 0 else { throw .badCounts("no local time types") }
        guard h.isutcnt == 0 || h.isutcnt == h.typecnt, h.isstdcnt == 0 || h.isstdcnt == h.typecnt else {
            throw .badCounts("indicator counts")
        }
        return h
    }

    mutating func dataBlock(_ h: Header, timeSize: Int) throws(TimeZoneError) -> Block {
        var times: [Int64] = []
        times.reserveCapacity(h.timecnt)
        for _ in 0..<h.timecnt { times.append(try int(timeSize)) }
        let indices = Array(try take(h.timecnt))
        guard indices.allSatisfy({ Int($0) < h.typecnt }) else { throw .badCounts("type index out of range") }
        var offsets: [Int] = []
        for _ in 0..<h.typecnt {
            offsets.append(Int(try int(4)))
            try skip(2)  // isdst, designation index: the offset is all the agent needs
        }
        try skip(h.charcnt + h.leapcnt * (timeSize + 4) + h.isstdcnt + h.isutcnt)
        return Block(times: times, typeIndices: indices, offsets: offsets)
    }

    mutating func footer() throws(TimeZoneError) -> String {
        guard position < bytes.count else { return "" }
        guard bytes[position] == 0x0A else { throw .notTZif }
        position += 1
        guard let end = bytes[position...].firstIndex(of: 0x0A) else { throw .truncated }
        return String(decoding: bytes[position..<end], as: UTF8.self)
    }
}

/// A POSIX TZ rule (`std offset [dst [offset] [,start[/time],end[/time]]]`), as found in TZif footers.
struct PosixTimeZone: Sendable, Hashable {
    enum DateRule: Hashable, Sendable {
        case julianNoLeap(Int)  // Jn: 1...365, February 29 never counted
        case zeroBased(Int)  // n: 0...365
        case monthWeekDay(month: Int, week: Int, weekday: Int)  // Mm.w.d

        func dayOfYear(_ year: Int) -> (month: Int, day: Int) {
            switch self {
            case .julianNoLeap(let n):
                var remaining = n
                for month in 1...12 {
                    let days = month == 2 ? 28 : CivilDateTime.daysInMonth(year: year, month: month)
                    if remaining <= days { return (month, remaining) }
                    remaining -= days
                }
                return (12, 31)
            case .zeroBased(let n):
                var remaining = n + 1
                for month in 1...12 {
                    let days = CivilDateTime.daysInMonth(year: year, month: month)
                    if remaining <= days { return (month, remaining) }
                    remaining -= days
                }
                return (12, 31)
            case .monthWeekDay(let month, let week, let weekday):
                let first = CivilDateTime(year: year, month: month, day: 1).weekday
                var day = 1 + (weekday - first + 7) % 7 + (week - 1) * 7
                let last = CivilDateTime.daysInMonth(year: year, month: month)
                while day > last { day -= 7 }  // week 5 means "the last such weekday"
                return (month, day)
            }
        }
    }

    struct Transition: Hashable, Sendable {
        var date: DateRule
        var secondsAfterMidnight: Int
    }

    var standardOffset: Int  // east positive, as everywhere else in the core
    var daylight: (offset: Int, start: Transition, end: Transition)?

    static func == (a: PosixTimeZone, b: PosixTimeZone) -> Bool {
        a.standardOffset == b.standardOffset && a.daylight?.offset == b.daylight?.offset
            && a.daylight?.start == b.daylight?.start && a.daylight?.end == b.daylight?.end
    }

    func hash(into h: inout Hasher) {
        h.combine(standardOffset)
        h.combine(daylight?.offset)
    }

    func utcOffset(atUTCSeconds t: Int64) -> Int {
        guard let dst = daylight else { return standardOffset }
        let year = CivilDateTime(WallTime(secondsSinceEpoch: t), utcOffsetSeconds: standardOffset).year
        // Start is given in local standard time, end in local daylight time.
        let start = instant(dst.start, year: year) - Int64(standardOffset)
        let end = instant(dst.end, year: year) - Int64(dst.offset)
        let inDaylight = start < end ? (t >= start && t < end) : !(t >= end && t < start)
        return inDaylight ? dst.offset : standardOffset
    }

    private func instant(_ tr: Transition, year: Int) -> Int64 {
        let (m, d) = tr.date.dayOfYear(year)
        return CivilDateTime.daysFromCivil(year: year, month: m, day: d) * 86_400 + Int64(tr.secondsAfterMidnight)
    }

    init?(_ text: String) {
        var s = Substring(text)
        guard PosixTimeZone.name(&s) != nil, let std = PosixTimeZone.offset(&s) else { return nil }
        standardOffset = -std  // POSIX counts west positive
        if s.isEmpty {
            daylight = nil
            return
        }
        guard PosixTimeZone.name(&s) != nil else { return nil }
        var dstOffset = standardOffset + 3600
        if let first = s.first, first != "," {
            guard let o = PosixTimeZone.offset(&s) else { return nil }
            dstOffset = -o
        }
        // Without a rule, POSIX leaves the dates implementation-defined; glibc uses the US rules.
        var start = Transition(date: .monthWeekDay(month: 3, week: 2, weekday: 0), secondsAfterMidnight: 7200)
        var end = Transition(date: .monthWeekDay(month: 11, week: 1, weekday: 0), secondsAfterMidnight: 7200)
        if s.first == "," {
            s.removeFirst()
            guard let a = PosixTimeZone.transition(&s), s.first == "," else { return nil }
            s.removeFirst()
            guard let b = PosixTimeZone.transition(&s) else { return nil }
            start = a
            end = b
        }
        guard s.isEmpty else { return nil }
        daylight = (dstOffset, start, end)
    }

    private static func name(_ s: inout Substring) -> Substring? {
        if s.first == "<" {
            guard let close = s.firstIndex(of: ">") else { return nil }
            let n = s[s.index(after: s.startIndex)..<close]
            s = s[s.index(after: close)...]
            return n.count >= 3 ? n : nil
        }
        let n = s.prefix { $0.isLetter }
        s = s.dropFirst(n.count)
        return n.count >= 3 ? n : nil
    }

    /// `[+-]hh[:mm[:ss]]` in seconds, sign as written.
    private static func offset(_ s: inout Substring) -> Int? {
        var sign = 1
        if s.first == "+" || s.first == "-" {
            sign = s.first == "-" ? -1 : 1
            s.removeFirst()
        }
        var parts: [Int] = []
        repeat {
            if !parts.isEmpty { s.removeFirst() }
            let digits = s.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, digits.count <= 3, let v = Int(digits) else { return nil }
            parts.append(v)
            s = s.dropFirst(digits.count)
        } while s.first == ":" && parts.count < 3
        guard parts[0] <= 167, parts.dropFirst().allSatisfy({ $0 < 60 }) else { return nil }
        let seconds = parts[0] * 3600 + (parts.count > 1 ? parts[1] * 60 : 0) + (parts.count > 2 ? parts[2] : 0)
        return sign * seconds
    }

    private static func transition(_ s: inout Substring) -> Transition? {
        func number(_ s: inout Substring) -> Int? {
            let digits = s.prefix { $0.isASCII && $0.isNumber }
            s = s.dropFirst(digits.count)
            return digits.isEmpty ? nil : Int(digits)
        }
        let date: DateRule
        switch s.first {
        case "J":
            s.removeFirst()
            guard let n = number(&s), (1...365).contains(n) else { return nil }
            date = .julianNoLeap(n)
        case "M":
            s.removeFirst()
            guard let m = number(&s), (1...12).contains(m), s.first == "." else { return nil }
            s.removeFirst()
            guard let w = number(&s), (1...5).contains(w), s.first == "." else { return nil }
            s.removeFirst()
            guard let d = number(&s), (0...6).contains(d) else { return nil }
            date = .monthWeekDay(month: m, week: w, weekday: d)
        default:
            guard let n = number(&s), (0...365).contains(n) else { return nil }
            date = .zeroBased(n)
        }
        var time = 7200
        if s.first == "/" {
            s.removeFirst()
            guard let t = offset(&s) else { return nil }
            time = t
        }
        return Transition(date: date, secondsAfterMidnight: time)
    }
}
