import Testing
@testable import VaktpostCore

@Suite struct TimeTests {
    @Test(arguments: [
        (CivilDateTime(year: 1970, month: 1, day: 1), 0),
        (CivilDateTime(year: 2000, month: 2, day: 29, hour: 12), 951_825_600),
        (CivilDateTime(year: 2026, month: 3, day: 29, hour: 1), 1_774_746_000),
        (CivilDateTime(year: 1969, month: 12, day: 31, hour: 23, minute: 59, second: 59), -1),
    ] as [(CivilDateTime, Int64)])
    func civilToUnix(civil: CivilDateTime, seconds: Int64) {
        #expect(civil.asUTC.secondsSinceEpoch == seconds)
        #expect(CivilDateTime(WallTime(secondsSinceEpoch: seconds), utcOffsetSeconds: 0) == civil)
    }

    @Test func weekdays() {
        #expect(CivilDateTime(year: 1970, month: 1, day: 1).weekday == 4)  // Thursday
        #expect(CivilDateTime(year: 2026, month: 3, day: 29).weekday == 0)  // Sunday
    }

    @Test func rfc3339RoundTrips() throws {
        let t = WallTime(secondsSinceEpoch: 1_774_747_200)  // 2026-03-29T01:20:00Z
        #expect(RFC3339.format(t, utcOffsetSeconds: 7200) == "2026-03-29T03:20:00+02:00")
        #expect(RFC3339.format(t, utcOffsetSeconds: 0, fractionDigits: 3) == "2026-03-29T01:20:00.000+00:00")
        #expect(RFC3339.format(t - .seconds(3 * 3600 + 1800), utcOffsetSeconds: -9000) == "2026-03-28T19:20:00-02:30")
        let parsed = try #require(RFC3339.parse("2026-03-29T03:20:00+02:00"))
        #expect(parsed.time == t)
        #expect(parsed.utcOffsetSeconds == 7200)
        #expect(RFC3339.parse("2026-03-29T01:20:00Z")?.time == t)
        #expect(RFC3339.parse("2026-03-29T01:20:00.250Z")?.time == t + .milliseconds(250))
        #expect(RFC3339.parse("2026-03-29T01:20:00.123456789123+00:00")?.time.nanosecondOfSecond == 123_456_789)
    }

    @Test(arguments: ["2026-02-30T00:00:00Z", "2026-03-29T24:00:00Z", "2026-03-29 01:20", "2026-03-29T01:20:00", "2026-03-29T01:20:00+0200", "x"])
    func rfc3339RejectsMalformed(text: String) {
        #expect(RFC3339.parse(text) == nil)
    }

    @Test(arguments: [
        ("30s", 30), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("0s", 0), ("1h1m1s", 3661), ("90m", 5400),
    ])
    func durations(text: String, seconds: Int64) throws {
        #expect(try DurationText.parse(text).get() == .seconds(seconds))
    }

    @Test(arguments: ["", "30", "m", "30 m", "2 hours", "30min", "1m1h", "1h1h", "-5m", "1.5h"])
    func badDurations(text: String) {
        guard case .failure(let e) = DurationText.parse(text) else { Issue.record("\(text) parsed"); return }
        #expect(e.hint == DurationText.hint)
    }

    @Test func durationsFormatShortest() {
        #expect(DurationText.format(.seconds(5400)) == "1h30m")
        #expect(DurationText.format(.seconds(60)) == "1m")
        #expect(DurationText.format(.zero) == "0s")
    }

    @Test func windowsCrossingMidnight() throws {
        let w = try DailyWindow.parse("22:00-07:00").get()
        #expect(w.crossesMidnight)
        #expect(w.contains(secondOfDay: 22 * 3600))
        #expect(w.contains(secondOfDay: 3 * 3600))
        #expect(!w.contains(secondOfDay: 7 * 3600))  // half-open: the end is outside
        #expect(!w.contains(secondOfDay: 12 * 3600))
        #expect(w.nominalLength == .seconds(9 * 3600))
        let day = try DailyWindow.parse("08:00-20:00").get()
        #expect(!day.crossesMidnight)
        #expect(day.contains(secondOfDay: 8 * 3600) && !day.contains(secondOfDay: 20 * 3600))
    }

    @Test(arguments: [("25:00-07:00", "hour 25"), ("22:60-07:00", "minute 60"), ("22:00", "two times"), ("7:00-22:00", "not a time of day"), ("22:00-22:00", "same time")])
    func badWindows(text: String, fragment: String) {
        guard case .failure(let e) = DailyWindow.parse(text) else { Issue.record("\(text) parsed"); return }
        #expect(e.problem.contains(fragment), "\(e.problem)")
    }

    // Europe/Oslo as a POSIX rule: the core's own arithmetic, independent of any file.
    let oslo = try! TimeZoneRules(identifier: "Europe/Oslo", posix: "CET-1CEST,M3.5.0,M10.5.0/3")

    @Test func osloOffsetsAroundTheSpringAndAutumnChanges2026() {
        let springUTC = CivilDateTime(year: 2026, month: 3, day: 29, hour: 1).asUTC  // 02:00 CET becomes 03:00 CEST
        #expect(oslo.utcOffset(at: springUTC - .seconds(1)) == 3600)
        #expect(oslo.utcOffset(at: springUTC) == 7200)
        let autumnUTC = CivilDateTime(year: 2026, month: 10, day: 25, hour: 1).asUTC  // 03:00 CEST becomes 02:00 CET
        #expect(oslo.utcOffset(at: autumnUTC - .seconds(1)) == 7200)
        #expect(oslo.utcOffset(at: autumnUTC) == 3600)
        #expect(oslo.format(CivilDateTime(year: 2026, month: 3, day: 29, hour: 1, minute: 20).asUTC) == "2026-03-29T03:20:00+02:00")
    }

    @Test func localTimesInTheGapHaveNoInstantAndInTheOverlapTwo() {
        #expect(oslo.instants(for: CivilDateTime(year: 2026, month: 3, day: 29, hour: 2, minute: 30)).isEmpty)
        let twice = oslo.instants(for: CivilDateTime(year: 2026, month: 10, day: 25, hour: 2, minute: 30))
        #expect(twice.map { oslo.format($0) } == ["2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00"])
        #expect(oslo.instants(for: CivilDateTime(year: 2026, month: 7, day: 1, hour: 12)).count == 1)
    }

    @Test(arguments: ["EST5EDT,M3.2.0,M11.1.0", "AEST-10AEDT,M10.1.0,M4.1.0/3", "<+0530>-5:30", "UTC0", "IST-5:30"])
    func posixRulesParse(rule: String) throws {
        _ = try TimeZoneRules(identifier: "x", posix: rule)
    }

    @Test func southernHemisphereDaylightSpansNewYear() throws {
        let sydney = try TimeZoneRules(identifier: "Australia/Sydney", posix: "AEST-10AEDT,M10.1.0,M4.1.0/3")
        #expect(sydney.utcOffset(at: CivilDateTime(year: 2026, month: 1, day: 15).asUTC) == 11 * 3600)
        #expect(sydney.utcOffset(at: CivilDateTime(year: 2026, month: 7, day: 15).asUTC) == 10 * 3600)
    }

    @Test(arguments: [[UInt8](), Array("TZjf".utf8) + [UInt8](repeating: 0, count: 40), Array("TZif2".utf8)])
    func brokenTZifIsAnErrorNotACrash(bytes: [UInt8]) {
        #expect(throws: TimeZoneError.self) { try TimeZoneRules(tzif: bytes, identifier: "x") }
    }
}

/// Found by fuzzing: a far-future year or an enormous duration must be refused, not overflow.
@Suite struct TimeLimitTests {
    @Test(arguments: ["9999-01-01T00:00:00Z", "1000-01-01T00:00:00Z", "2263-01-01T00:00:00+00:00"])
    func yearsOutsideWhatTheAgentCanHoldAreRefused(text: String) {
        #expect(RFC3339.parse(text) == nil)
    }

    @Test func durationsLongerThanThirtyDaysAreRefused() throws {
        #expect(try DurationText.parse("720h").get() == .seconds(30 * 86_400))
        guard case .failure(let e) = DurationText.parse("1000000000h") else { Issue.record("accepted"); return }
        #expect(e.problem.contains("longer than 30 days"))
    }

    @Test func nanosecondsSaturate() {
        #expect(Duration.seconds(Int64.max / 2).nanoseconds == .max)
        #expect(Duration.seconds(-Int64.max / 2).nanoseconds == .min)
    }
}
