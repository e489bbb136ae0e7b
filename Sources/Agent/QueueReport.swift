import Outbox
import VaktpostCore

/// How `vaktpost queue` shows the outbox: what waits, how old it is, what was refused or evicted.
public enum QueueReport {
    public static func text(_ s: OutboxStatus, path: String, now: WallTime, zone: TimeZoneRules) -> String {
        var lines = ["outbox \(path)", "  lane    depth       bytes  oldest"]
        for lane in [Lane.alarm, .bulk] {
            let l = s.lanes[lane] ?? .empty
            let oldest = l.oldest.map { "\(age(now - $0)) ago (\(zone.format($0)))" } ?? "-"
            lines.append("  \(padded(lane.rawValue, 6)) \(padded(String(l.depth), 6, right: true)) \(padded(size(l.bytes), 11, right: true))  \(oldest)")
        }
        lines.append("  dead letters: \(s.deadLetters)\(s.deadLetters > 0 ? " (see `vaktpost queue dead-letters`)" : "")")
        lines.append("  evicted: \(s.evictedLog) log, \(s.coalescedState) state coalesced; alarms are never evicted")
        lines.append("  next seq: \(s.nextSeq)")
        return lines.joined(separator: "\n") + "\n"
    }

    public static func json(_ s: OutboxStatus, path: String, now: WallTime) -> JSONValue {
        func lane(_ l: LaneStatus?) -> JSONValue {
            let l = l ?? .empty
            return .object(dropping: [
                ("depth", .int(Int64(l.depth))), ("bytes", .int(l.bytes)),
                ("oldestAt", l.oldest.map { .string(RFC3339.format($0, utcOffsetSeconds: 0)) }),
                ("oldestAgeSeconds", l.oldest.map { .int((now - $0).components.seconds) }),
            ])
        }
        return .object([
            ("path", .string(path)),
            ("lanes", .object([("alarm", lane(s.lanes[.alarm])), ("bulk", lane(s.lanes[.bulk]))])),
            ("deadLetters", .int(Int64(s.deadLetters))),
            ("evictedLog", .int(s.evictedLog)),
            ("coalescedState", .int(s.coalescedState)),
            ("nextSeq", .int(Int64(s.nextSeq))),
        ])
    }

    public static func deadLettersText(_ letters: [DeadLetter], zone: TimeZoneRules) -> String {
        guard !letters.isEmpty else { return "no dead letters\n" }
        return letters.map { "\($0.seq)  \(zone.format($0.rejectedAt))  \($0.eventClass)/\($0.type)  \($0.eventID)\n    reason: \($0.reason)" }
            .joined(separator: "\n") + "\n\(letters.count) dead letter\(letters.count == 1 ? "" : "s"); after the platform is fixed: vaktpost queue retry-dead-letters\n"
    }

    public static func deadLettersJSON(_ letters: [DeadLetter]) -> JSONValue {
        .array(letters.map {
            .object([
                ("seq", .int(Int64($0.seq))), ("eventId", .string($0.eventID.description)), ("class", .string($0.eventClass)),
                ("type", .string($0.type)), ("reason", .string($0.reason)), ("rejectedAt", .string(RFC3339.format($0.rejectedAt, utcOffsetSeconds: 0))),
            ])
        })
    }

    static func age(_ d: Duration) -> String {
        let s = max(0, d.components.seconds)
        return s < 60 ? "\(s)s" : DurationText.format(.seconds(s - s % 60))
    }

    static func size(_ bytes: Int64) -> String {
        bytes < 1024 ? "\(bytes) B" : bytes < 1 << 20 ? "\(bytes >> 10) KiB" : "\(bytes >> 20) MiB"
    }

}
