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
/// requests of the hub's during that wait counts as `reportAfter` failures at once: passed
/// over and reported. An attempt takes 10 s; the alarms behind it must not wait for three, and
/// the platform's staff should not wait for six. Such an alarm `hangs`: it is owed no tries
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

    struct Failing {
        var event: StoredEvent
        /// Answered failures in a row (an unanswered one counts `reportAfter`).
        var count = 0
        /// The platform's last answer to it, for the report.
        var lastError: String
        /// The platform was seen to work since its failures began.
        var worksMeanwhile = false
        /// Tries owed to it before it is passed over again.
        var owed = 0
        /// The platform left it unanswered while it answered others: tried only alone.
        var hangs = false
    }

    /// The events the platform answered with a failure since they were last taken.
    private(set) var failing: [EventID: Failing] = [:]
    /// Those reported (`alarm.undelivered`), once each.
    private(set) var reported: Set<EventID> = []

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
    /// another request of the hub's: as telling as `reportAfter` answered failures, and the
    /// platform seen to work meanwhile.
    mutating func unanswered(_ event: StoredEvent, _ error: String) {
        failed(event, error)
        failing[event.eventID]!.count = max(failing[event.eventID]!.count, Self.reportAfter)
        failing[event.eventID]!.worksMeanwhile = true
        failing[event.eventID]!.hangs = true
    }

    /// Whether `event` is passed over because the platform leaves it unanswered: a try of it,
    /// alone, is given up for another alarm.
    func hangs(_ event: StoredEvent) -> Bool { failing[event.eventID]?.hangs == true }

    /// The platform took `event`, or dead-lettered it: done with. Those passed over are owed a
    /// try each.
    mutating func done(_ event: StoredEvent) {
        failing[event.eventID] = nil
        reported.remove(event.eventID)
        for (id, f) in failing where f.worksMeanwhile && !f.hangs { failing[id]!.owed = 1 }
    }

    /// The platform was seen to work (any request of the hub's succeeded). Returns, in send
    /// order, the alarms to report now: passed over after `reportAfter` failures, not reported
    /// before, and never an `alarm.undelivered` itself (which would report itself).
    mutating func platformWorks() -> [Failing] {
        var report: [Failing] = []
        for (id, var f) in failing {
            if passedOver(f.event), f.count >= Self.reportAfter, f.event.type != EventType.alarmUndelivered.rawValue,
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
