#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import Agent
import VaktpostCore

/// The core's TZif reading against glibc's own `localtime_r`, zone by zone.
/// Serialized: `TZ` is process-global, and only this suite touches it.
@Suite(.serialized) struct TimeZoneAgainstGlibcTests {
    func glibcTime(_ zone: String, _ t: Int64) -> Glibc.tm {
        setenv("TZ", ":" + zone, 1)
        tzset()
        var seconds = time_t(t)
        var tm = Glibc.tm()
        localtime_r(&seconds, &tm)
        return tm
    }

    func glibcOffset(_ zone: String, _ t: Int64) -> Int { Int(glibcTime(zone, t).tm_gmtoff) }

    /// glibc's local time written the way the core writes RFC 3339.
    func glibcLocal(_ zone: String, _ t: Int64) -> String {
        let tm = glibcTime(zone, t)
        func p(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let off = Int32(tm.tm_gmtoff)
        return "\(tm.tm_year + 1900)-\(p(tm.tm_mon + 1))-\(p(tm.tm_mday))T\(p(tm.tm_hour)):\(p(tm.tm_min)):\(p(tm.tm_sec))"
            + (off < 0 ? "-" : "+") + p(abs(off) / 3600) + ":" + p(abs(off) / 60 % 60)
    }

    /// Every Europe/Oslo transition from 2024 through 2030: found by glibc, matched to the second by the core.
    @Test func everyOsloTransition2024Through2030MatchesGlibc() throws {
        let oslo = try TimeZoneLoader.load("Europe/Oslo")
        let start = CivilDateTime(year: 2024, month: 1, day: 1).asUTC.secondsSinceEpoch
        let end = CivilDateTime(year: 2031, month: 1, day: 1).asUTC.secondsSinceEpoch
        var transitions: [Int64] = []
        var t = start
        var previous = glibcOffset("Europe/Oslo", t)
        while t < end {
            let next = t + 3600
            let offset = glibcOffset("Europe/Oslo", next)
            #expect(oslo.utcOffset(at: WallTime(secondsSinceEpoch: next)) == offset, "offset at \(next)")
            if offset != previous {
                // Narrow down to the exact second glibc changes.
                var lo = t, hi = next
                while hi - lo > 1 {
                    let mid = (lo + hi) / 2
                    if glibcOffset("Europe/Oslo", mid) == previous { lo = mid } else { hi = mid }
                }
                transitions.append(hi)
                for s in [hi - 1, hi] {
                    let w = WallTime(secondsSinceEpoch: s)
                    #expect(oslo.utcOffset(at: w) == glibcOffset("Europe/Oslo", s))
                    #expect(oslo.format(w) == glibcLocal("Europe/Oslo", s))
                }
                previous = offset
            }
            t = next
        }
        // Two changes a year: last Sunday of March 01:00 UTC, last Sunday of October 01:00 UTC.
        #expect(transitions.count == 14)
        let formatted = transitions.map { oslo.format(WallTime(secondsSinceEpoch: $0)) }
        #expect(formatted.first == "2024-03-31T03:00:00+02:00")
        #expect(formatted.contains("2026-03-29T03:00:00+02:00"))
        #expect(formatted.contains("2026-10-25T02:00:00+01:00"))
        #expect(formatted.last == "2030-10-27T02:00:00+01:00")
        #expect(oslo.format(CivilDateTime(year: 2026, month: 3, day: 29, hour: 1, minute: 20).asUTC) == "2026-03-29T03:20:00+02:00")
    }

    /// Zones that exercise the TZif footer differently: US rules, southern hemisphere,
    /// half-hour offsets, abolished DST, and Dublin's negative daylight saving.
    @Test(arguments: ["America/New_York", "Australia/Sydney", "Asia/Kolkata", "America/Sao_Paulo", "Europe/Dublin", "UTC", "Pacific/Chatham"])
    func otherZonesMatchGlibcDaily(zone: String) throws {
        let rules = try TimeZoneLoader.load(zone)
        for (from, to) in [(1990, 2000), (2024, 2040)] {
            var t = CivilDateTime(year: from, month: 1, day: 1).asUTC.secondsSinceEpoch
            let end = CivilDateTime(year: to, month: 1, day: 1).asUTC.secondsSinceEpoch
            while t < end {
                #expect(rules.utcOffset(at: WallTime(secondsSinceEpoch: t)) == glibcOffset(zone, t), "\(zone) at \(t)")
                t += 86_400 + 3607  // a day and a bit, so the probe wanders through the hours
            }
        }
    }

    @Test func aMisspelledZoneSaysWhatToCheck() {
        #expect {
            try TimeZoneLoader.load("Europe/Olso")
        } throws: { error in
            "\(error)".contains("not in the time zone database") && "\(error)".contains("tzdata")
        }
    }
}
