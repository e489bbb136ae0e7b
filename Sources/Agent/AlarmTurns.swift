import Outbox
import VaktpostCore

/// Which waiting alarm-lane event the alarm lane sends next: in send order (highest priority,
/// then oldest), except behind an alarm the platform keeps failing while it works.
///
/// The lane sends one alarm at a time and never gives up on one. A platform that breaks on one
/// alarm (its handler throws on a field, a proxy chokes on its size) answers 500 to it every
/// time; sent strictly in order, that alarm would hold every alarm raised after it, a fall
/// included, for as long as the platform's bug lasts.
///
/// So an alarm the platform failed `patience` times in a row (answered failures: a 5xx, 408,
/// 425, 429, or a 2xx that is not its answer), and failed again after the platform was first
/// seen to work (it took an alarm, a batch, a heartbeat or a command poll), is passed over: the
/// next one in order goes. Each time the lane gets another alarm through, the one passed over
/// is owed one more try, so it goes as soon as the platform takes it, and the alarms behind it
/// each wait for one failed try of it at most. (Not each time the platform is seen to work:
/// a backlog's batches succeed every few milliseconds, and a try owed for each would leave the
/// alarms behind it waiting as before.) Once it has failed `reportAfter` times in a row, passed
/// over, it is reported (`alarm.undelivered`).
///
/// An alarm the platform leaves unanswered (its handler waits on something that never comes,
/// behind a gateway whose own timeout is longer than the hub's attempt) while it answers other
/// requests of the hub's sent during that wait (`DeliveryLanes.unansweredWhileThePlatformWorked`,
/// a heartbeat sent out of turn to find out) counts as `patience` failures at once: passed
/// over, since an attempt takes 10 s and the alarms behind it must not wait for three (nor for
/// the rest of the first: `DeliveryLanes.watchTry` gives it up once that is known). Not yet
/// reported: an alarm sent into a platform that was slow for everything, which recovered during
/// the attempt, looks the same once, and goes at its next try. It is reported at a second
/// such attempt, or once it has been passed over for `reportHungAfter` without getting
/// through (its tries alone given up for other alarms). Such an alarm `hangs`: it is owed no tries
/// (each would hold the lane for a whole attempt), and is tried only when no other alarm
/// waits, a try the lane gives up as soon as another alarm is stored.
///
/// Nothing is passed over in a plain outage: failures without an answer (the link is down, a
/// request timed out) are not counted unless the platform answered another request meanwhile,
/// and a platform that fails every request, heartbeats too, is never seen to work meanwhile.
/// The order is kept, and nothing is reported.
///
/// An event never overtakes an earlier one of its sensor and type: a `cleared` must not reach
/// the platform before its `active`, nor an update before the alarm it updates.
struct AlarmTurns {
    /// Answered failures in a row before an alarm may be passed over.
    static let patience = 3
    /// Answered failures in a row, passed over, before it is reported.
    static let reportAfter = 6
    /// Passed over for this long (boot clock, ns), an alarm the platform hangs on is reported.
    static let reportHungAfter: UInt64 = 30_000_000_000

    struct Failing {
        var event: StoredEvent
        /// Answered failures in a row (an unanswered one counts `patience`).
        var count = 0
        /// The platform's last answer to it, for the report.
        var lastError: String
        /// The platform was seen to work since its failures began.
        var worksMeanwhile = false
        /// Tries owed to it before it is passed over again.
        var owed = 0
        /// The platform left it unanswered while it answered others: tried only alone.
        var hangs = false
        /// When it was first found so (boot clock, ns).
        var hungSince: UInt64 = 0
    }

    /// The events the platform answered with a failure since they were last taken.
    private(set) var failing: [EventID: Failing] = [:]
    /// Those reported (`alarm.undelivered`), once each.
    private(set) var reported: Set<EventID> = []

    /// `reported`: those an agent before this one reported, still queued: not reported again,
    /// and `done` with them ends their report.
    init(reported: Set<EventID> = []) { self.reported = reported }

    /// The event to send next of `waiting`, which is in send order.
    func pick(_ waiting: [StoredEvent]) -> StoredEvent? {
        guard let head = waiting.first else { return nil }
        guard passedOver(head) else { return head }
        var first: [String: UInt64] = [:]
        for e in waiting { first[Self.story(e)] = min(first[Self.story(e)] ?? .max, e.seq) }
        return waiting.first { !passedOver($0) && first[Self.story($0)] == $0.seq } ?? head
    }

    func passedOver(_ e: StoredEvent) -> Bool {
        guard let f = failing[e.eventID] else { return false }
        return f.worksMeanwhile && f.count >= Self.patience && f.owed == 0
    }

    /// The platform answered `event` with a failure (`error`, as the journal says it).
    mutating func failed(_ event: StoredEvent, _ error: String) {
        // Bounded: an event that left the queue another way (a restart's stand-in, say) is not
        // remembered for ever.
        if failing.count >= 256 && failing[event.eventID] == nil { failing.removeAll() }
        var f = failing[event.eventID] ?? Failing(event: event, lastError: error)
        f.count += 1
        f.lastError = error
        f.owed = max(0, f.owed - 1)
        failing[event.eventID] = f
    }

    /// The platform left `event` unanswered for the better part of an attempt while it answered
    /// another request of the hub's (at `now`, boot clock ns): as telling as `patience`
    /// answered failures, and the platform seen to work meanwhile.
    mutating func unanswered(_ event: StoredEvent, _ error: String, at now: UInt64) {
        failed(event, error)
        var f = failing[event.eventID]!
        f.count += Self.patience - 1
        f.worksMeanwhile = true
        if !f.hangs { f.hungSince = now }
        f.hangs = true
        failing[event.eventID] = f
    }

    /// Whether `event` is passed over because the platform leaves it unanswered: a try of it,
    /// alone, is given up for another alarm.
    func hangs(_ event: StoredEvent) -> Bool { failing[event.eventID]?.hangs == true }

    /// The platform took `event`, or dead-lettered it: done with. Those passed over are owed a
    /// try each. True when it had been reported: its `alarm.undelivered` is over.
    @discardableResult
    mutating func done(_ event: StoredEvent) -> Bool {
        failing[event.eventID] = nil
        for (id, f) in failing where f.worksMeanwhile && !f.hangs { failing[id]!.owed = 1 }
        return reported.remove(event.eventID) != nil
    }

    /// The platform was seen to work (any request of the hub's succeeded). Returns, in send
    /// order, the alarms to report now (`now`: boot clock, ns): passed over after `reportAfter`
    /// failures, or hung on for `reportHungAfter`, not reported before, and never an
    /// `alarm.undelivered` itself (which would report itself).
    mutating func platformWorks(at now: UInt64) -> [Failing] {
        var report: [Failing] = []
        for (id, var f) in failing {
            let due = f.count >= Self.reportAfter || (f.hangs && now &- f.hungSince >= Self.reportHungAfter)
            if passedOver(f.event), due, f.event.type != EventType.alarmUndelivered.rawValue,
               reported.insert(id).inserted {
                report.append(f)
            }
            if !f.worksMeanwhile {
                // The first sign since its failures began (an outage over, say): tried before
                // the next in order.
                f.worksMeanwhile = true
                f.owed = 1
            }
            failing[id] = f
        }
        if reported.count > 256 { reported.removeAll() }
        return report.sorted { Outbox.sendOrder($0.event, $1.event) }
    }

    /// Events of one sensor and type tell one story, in order.
    static func story(_ e: StoredEvent) -> String { e.type + "\u{0}" + (e.sensor ?? "") }
}
