@testable import Agent
@testable import Outbox
import Testing
import VaktpostCore

/// The alarm lane's order past an alarm the platform keeps failing (`AlarmTurns`).
struct AlarmTurnsTests {
    var rng = SplitMix64(seed: 21)
    var seq: UInt64 = 0

    mutating func alarm(_ type: EventType, sensor: String? = "bed") -> StoredEvent {
        seq += 1
        let kind = EventCatalog.kind(of: type)!
        return StoredEvent(seq: seq, eventID: EventID.v7(unixMilliseconds: 1_800_000_000_000 + Int64(seq), using: &rng), lane: .alarm,
                           eventClass: kind.eventClass, type: type.rawValue, priority: kind.priority.value, sensor: sensor,
                           occurredAt: WallTime(secondsSinceEpoch: 1_800_000_000 + Int64(seq), nanoseconds: 0), payload: [])
    }

    static func fail(_ turns: inout AlarmTurns, _ e: StoredEvent, times: Int) {
        for _ in 0..<times { turns.failed(e, "HTTP 500: boom") }
    }

    @Test mutating func inOrderWhileNothingFails() {
        let fall = alarm(.fallDetected), bed = alarm(.bedNotReturned)
        let turns = AlarmTurns()
        #expect(turns.pick([]) == nil)
        #expect(turns.pick([fall, bed]) == fall)
    }

    /// A platform failing every request (never seen to work meanwhile) passes nothing over:
    /// an outage keeps the order.
    @Test mutating func anOutagePassesNothingOver() {
        let fall = alarm(.fallDetected), bed = alarm(.bedNotReturned)
        var turns = AlarmTurns()
        Self.fail(&turns, fall, times: 50)
        #expect(turns.pick([fall, bed]) == fall)
        #expect(turns.platformWorks(at: 0).isEmpty)
        #expect(turns.pick([fall, bed]) == fall, "owed a try once the platform works")
    }

    @Test mutating func failingWhileThePlatformWorksIsPassedOverAndTriedAfterEachAlarmThatGoes() {
        let fall = alarm(.fallDetected), button = alarm(.buttonPressed), bed = alarm(.bedNotReturned)
        var turns = AlarmTurns()
        Self.fail(&turns, fall, times: 1)
        _ = turns.platformWorks(at: 0)
        Self.fail(&turns, fall, times: 1)
        #expect(turns.pick([fall, button, bed]) == fall, "fewer than `patience` failures: still first")
        Self.fail(&turns, fall, times: 1)
        #expect(turns.pick([fall, button, bed]) == button)
        for _ in 0..<5 { _ = turns.platformWorks(at: 0) }
        #expect(turns.pick([fall, button, bed]) == button, "the platform working owes it nothing more (a backlog's batches)")
        turns.done(button)
        #expect(turns.platformWorks(at: 0).isEmpty, "three failures: not reported")
        #expect(turns.pick([fall, bed]) == fall, "tried again once the lane got another alarm through")
        Self.fail(&turns, fall, times: 1)
        #expect(turns.pick([fall, bed]) == bed)
        turns.done(bed)
        #expect(turns.pick([fall]) == fall)
        Self.fail(&turns, fall, times: 1)
        #expect(turns.pick([fall]) == fall, "alone: tried all the same")
        turns.done(fall)
        #expect(turns.failing.isEmpty)
    }

    /// A `cleared` or an update never reaches the platform before the alarm it ends, whatever
    /// is passed over; another sensor's alarm of the same type may go.
    @Test mutating func noEventOvertakesAnEarlierOneOfItsSensorAndType() {
        let fall = alarm(.fallDetected), update = alarm(.fallDetected), otherFall = alarm(.fallDetected, sensor: "hall"), bed = alarm(.bedNotReturned)
        var turns = AlarmTurns()
        Self.fail(&turns, fall, times: 3)
        _ = turns.platformWorks(at: 0)
        Self.fail(&turns, fall, times: 1)
        #expect(turns.pick([fall, update, otherFall, bed]) == otherFall)
        #expect(turns.pick([fall, update, bed]) == bed)
        #expect(turns.pick([fall, update]) == fall, "nothing else may go: the head is tried")
    }

    @Test mutating func reportedOnceAfterSixFailuresPassedOverNeverItself() {
        let fall = alarm(.fallDetected), bed = alarm(.bedNotReturned)
        var turns = AlarmTurns()
        Self.fail(&turns, fall, times: 5)
        _ = turns.platformWorks(at: 0)
        Self.fail(&turns, fall, times: 1)
        #expect(turns.pick([fall, bed]) == bed)
        let report = turns.platformWorks(at: 0)
        #expect(report.map(\.event) == [fall])
        #expect(report.first?.lastError == "HTTP 500: boom")
        Self.fail(&turns, fall, times: 1)
        #expect(turns.platformWorks(at: 0).isEmpty, "reported once")
        let bedDone = turns.done(bed), fallDone = turns.done(fall), fallAgain = turns.done(fall)
        #expect(!bedDone, "done with, never reported: nothing to restore")
        #expect(fallDone, "done with after its report: its alarm.undelivered is restored")
        #expect(!fallAgain, "once")
        let note = alarm(.alarmUndelivered, sensor: nil)
        Self.fail(&turns, note, times: 6)
        _ = turns.platformWorks(at: 0)
        Self.fail(&turns, note, times: 1)
        #expect(turns.pick([note, bed]) == bed)
        #expect(turns.platformWorks(at: 0).isEmpty, "an alarm.undelivered is never reported itself")
    }

    /// Left unanswered while the platform answered others: passed over at once, owed no tries
    /// (each would hold the lane for a whole attempt), tried when alone; reported at the second
    /// such attempt, or once passed over for 30 s (its tries alone given up for other alarms).
    @Test mutating func anAlarmThePlatformHangsOnIsPassedOverAtOnceAndTriedOnlyAlone() {
        let fall = alarm(.fallDetected), button = alarm(.buttonPressed), bed = alarm(.bedNotReturned)
        let s: UInt64 = 1_000_000_000
        var turns = AlarmTurns()
        turns.unanswered(fall, "no answer in 10 s", at: 100 * s)
        #expect(turns.hangs(fall))
        #expect(turns.pick([fall, button, bed]) == button)
        #expect(turns.platformWorks(at: 101 * s).isEmpty, "once: not reported (a platform recovering as it went looks the same)")
        #expect(turns.pick([fall, button, bed]) == button, "the platform working owes it nothing")
        turns.done(button)
        #expect(turns.pick([fall, bed]) == bed, "nor another alarm getting through")
        turns.done(bed)
        #expect(turns.pick([fall]) == fall, "alone: tried")
        turns.unanswered(fall, "no answer in 10 s again", at: 112 * s)
        let report = turns.platformWorks(at: 113 * s)
        #expect(report.map(\.event) == [fall], "the second: reported")
        #expect(report.first?.lastError == "no answer in 10 s again")
        #expect(turns.platformWorks(at: 200 * s).isEmpty, "reported once")
        turns.failed(fall, "HTTP 500: boom")
        #expect(turns.hangs(fall), "an answer later does not make it owed tries")
        #expect(!turns.hangs(bed))
        let restored = turns.done(fall)
        #expect(restored, "reported: restored")
        #expect(!turns.hangs(fall))

        let other = alarm(.fallDetected, sensor: "hall")
        turns.unanswered(other, "no answer in 10 s", at: 300 * s)
        #expect(turns.platformWorks(at: 329 * s).isEmpty)
        #expect(turns.platformWorks(at: 330 * s).map(\.event) == [other], "passed over for 30 s: reported")
    }
}
