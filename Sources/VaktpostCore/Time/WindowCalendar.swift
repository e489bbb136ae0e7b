/// Local-calendar arithmetic the rules need: which instant a local time names, and where a
/// night window's current or next occurrence starts and ends.
extension TimeZoneRules {
    /// The instant that local `civil` names. In an autumn overlap, the earlier of the two; in a
    /// spring gap, the moment the clock has jumped past it (02:30 on the spring night reads as
    /// 03:30 summer time), so a window or check time in the gap still happens once.
    public func resolve(_ civil: CivilDateTime) -> WallTime {
        if let first = instants(for: civil).first { return first }
        let naive = civil.asUTC
        return naive - .seconds(utcOffset(at: naive - .seconds(86_400)))
    }
}

extension CivilDateTime {
    /// The same wall-clock time `days` calendar days later (or earlier).
    public func addingDays(_ days: Int) -> CivilDateTime {
        let (y, m, d) = CivilDateTime.civilFromDays(CivilDateTime.daysFromCivil(year: year, month: month, day: day) + Int64(days))
        return CivilDateTime(year: y, month: m, day: d, hour: hour, minute: minute, second: second, nanosecond: nanosecond)
    }

    func at(_ time: TimeOfDay) -> CivilDateTime {
        CivilDateTime(year: year, month: month, day: day, hour: time.hour, minute: time.minute)
    }
}

/// One occurrence of a daily window, as instants: `[start, end)`.
public struct WindowOccurrence: Hashable, Sendable {
    public var start: WallTime
    public var end: WallTime
}

extension DailyWindow {
    /// The occurrence that `t` lies in, or nil when `t` is outside the window.
    public func occurrence(containing t: WallTime, in zone: TimeZoneRules) -> WindowOccurrence? {
        let local = zone.localTime(t)
        guard contains(secondOfDay: local.secondOfDay) else { return nil }
        let startDay = crossesMidnight && local.secondOfDay < end.minuteOfDay * 60 ? local.addingDays(-1) : local
        let occurrence = occurrence(startingOn: startDay, in: zone)
        // A window edge inside a spring gap resolves past `t`; the occurrence still holds `t`.
        return WindowOccurrence(start: min(occurrence.start, t), end: max(occurrence.end, t + .seconds(1)))
    }

    /// The first occurrence that starts after `t`.
    public func nextOccurrence(after t: WallTime, in zone: TimeZoneRules) -> WindowOccurrence {
        let local = zone.localTime(t)
        for days in 0...2 {
            let candidate = occurrence(startingOn: local.addingDays(days), in: zone)
            if candidate.start > t { return candidate }
        }
        return occurrence(startingOn: local.addingDays(3), in: zone)
    }

    /// The occurrence holding `t`, or else the next one.
    public func currentOrNextOccurrence(at t: WallTime, in zone: TimeZoneRules) -> WindowOccurrence {
        occurrence(containing: t, in: zone) ?? nextOccurrence(after: t, in: zone)
    }

    private func occurrence(startingOn day: CivilDateTime, in zone: TimeZoneRules) -> WindowOccurrence {
        let endDay = crossesMidnight ? day.addingDays(1) : day
        return WindowOccurrence(start: zone.resolve(day.at(start)), end: zone.resolve(endDay.at(end)))
    }
}

extension TimeOfDay {
    /// The first instant after `t` at which the local clock shows this time.
    public func next(after t: WallTime, in zone: TimeZoneRules) -> WallTime {
        let local = zone.localTime(t)
        for days in 0...2 {
            let candidate = zone.resolve(local.addingDays(days).at(self))
            if candidate > t { return candidate }
        }
        return zone.resolve(local.addingDays(3).at(self))
    }
}
