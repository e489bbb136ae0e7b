import Synchronization
import VaktpostCore

/// How large the outbox may grow. Alarms, technical and test events are never evicted to stay
/// inside it; the limits decide when old `log` and superseded `state` events go.
public struct OutboxLimits: Sendable {
    public var maxBytes: Int64
    public var maxRows: Int
    /// Events held in memory while the disk takes no writes (and seq numbers reserved for them).
    public var memoryEvents: Int
    /// A hard cap on the database file in pages (SQLite `max_page_count`): past it writes fail
    /// exactly as on a full disk. For hubs whose SD card is shared, and for tests.
    public var maxPages: Int?
    /// How long a write waits for another process's transaction on the file (`vaktpost queue
    /// retry-dead-letters`, a technician's `sqlite3`) before its events go to memory instead.
    public var lockWait: Duration

    /// The limits a hub's `[outbox]` section sets.
    public init(_ config: OutboxConfig) {
        self.init(maxBytes: config.maxBytes, maxRows: config.maxRows)
    }

    public init(maxBytes: Int64 = 64 << 20, maxRows: Int = 200_000, memoryEvents: Int = 1000, maxPages: Int? = nil, lockWait: Duration = .seconds(5)) {
        self.maxBytes = maxBytes
        self.maxRows = maxRows
        self.memoryEvents = memoryEvents
        self.maxPages = maxPages
        self.lockWait = lockWait
    }

    /// The seqs an unclean stop skips: those perhaps given out and never written, to events held
    /// in memory by the outbox (`memoryEvents`), to alarms stamped by the daemon while a write
    /// hung (as many again; some of them perhaps at the platform already), and to what was handed
    /// over before the write was known to hang (a few hand-overs of at most 100 events: a
    /// `memoryEvents` more covers them).
    public var seqReserve: Int { 3 * memoryEvents }
}

/// The outbox's seq counter. Atomic because two threads take from it: the outbox's owner, and
/// the daemon's hand-over to its writer, which stamps events before `append` so that the alarm
/// lane can send an alarm with its seq while the write that would store it hangs.
public final class SeqCounter: Sendable {
    let next = Atomic<UInt64>(1)

    public init() {}

    /// Takes the next seq.
    public func take() -> UInt64 { next.wrappingAdd(1, ordering: .relaxed).oldValue }

    public var peek: UInt64 { next.load(ordering: .relaxed) }

    func set(_ value: UInt64) { next.store(value, ordering: .relaxed) }

    /// Gives back the seq last taken if nobody took one since (no gap for an event never written).
    func giveBack(_ seq: UInt64) { _ = next.compareExchange(expected: seq + 1, desired: seq, ordering: .relaxed) }
}

/// An event as the outbox keeps it: its place in the queue and its exact serialized bytes.
public struct StoredEvent: Equatable, Sendable {
    public var seq: UInt64
    public var eventID: EventID
    public var lane: Lane
    public var eventClass: EventClass
    public var type: String
    public var priority: Int
    public var sensor: String?
    public var occurredAt: WallTime
    /// The event in the uplink schema (`hub-event/1`), with its seq.
    public var payload: [UInt8]

    /// An event with its seq (stamped: the outbox's `prepare`, the daemon's writer).
    public init(_ e: Event) {
        self.init(seq: e.seq!, eventID: e.eventID, lane: e.lane, eventClass: e.eventClass, type: e.type.rawValue,
                  priority: e.priority.value, sensor: e.sensor?.rawValue, occurredAt: e.occurredAt.wall,
                  payload: e.json.serializedBytes)
    }

    init(seq: UInt64, eventID: EventID, lane: Lane, eventClass: EventClass, type: String, priority: Int, sensor: String?, occurredAt: WallTime, payload: [UInt8]) {
        self.seq = seq
        self.eventID = eventID
        self.lane = lane
        self.eventClass = eventClass
        self.type = type
        self.priority = priority
        self.sensor = sensor
        self.occurredAt = occurredAt
        self.payload = payload
    }
}

/// Events handed to the uplink together, under one id. Its bytes are fixed when it is made and
/// stored before the first send, so every retry sends exactly the same request body.
public struct OutboxBatch: Equatable, Sendable {
    public var id: String
    public var lane: Lane
    public var body: [UInt8]
    public var events: [StoredEvent]
    /// Not in the batches table (made while the disk took no writes, or an alarm, which is never
    /// stored): lives only in memory until it is settled.
    public var inMemory: Bool

    /// An alarm-lane event as the alarm lane sends it: alone, its POST the event itself
    /// (deduplicated by eventId, so it needs no batch key), made again for every attempt and never
    /// stored. The id names no stored batch.
    public static func alarm(_ e: StoredEvent) -> OutboxBatch {
        OutboxBatch(id: "alarm-" + e.eventID.description, lane: .alarm, body: e.payload, events: [e], inMemory: true)
    }
}

/// What the platform said about a batch, as `Outbox.settle` records it.
struct Settlement {
    var batch: OutboxBatch
    var outcomes: [EventID: DeliveryOutcome]
    /// The batch's events that were in memory only, never in the table, when it was settled.
    var onlyInMemory: Set<EventID>
    /// When the platform answered (the followed alarm's acceptance, the dead letter's rejection).
    var at: WallTime

    /// The alarms it hands over to following (an operator's acknowledgement is awaited).
    var followed: [FollowedAlarm] {
        batch.events.compactMap { e in
            guard case .deliveredFollowing(let location)? = outcomes[e.eventID] else { return nil }
            return FollowedAlarm(event: e, location: location, acceptedAt: at, status: "received", escalation: nil)
        }
    }

    /// Whether recording it writes anything: not for a batch made in memory of events held in
    /// memory, delivered or left unanswered (they stay in the memory queue).
    var touchesDisk: Bool {
        !batch.inMemory || batch.events.contains { e in
            switch outcomes[e.eventID] {
            case .delivered?, nil: !onlyInMemory.contains(e.eventID)
            case .deliveredFollowing?, .rejected?: true
            }
        }
    }
}

/// A change to a followed alarm: its latest status (and escalation), or the end of following.
public enum FollowUp: Hashable, Sendable {
    case status(String, EventID?)
    case ended
}

/// Where a rewrite pass (`Outbox.rewriteQueued`) stands: the alarm lane's events first, then
/// the bulk lane's, each in seq order after `after`.
public struct RewriteCursor: Equatable, Sendable {
    public var lane: Lane
    public var after: UInt64

    public static let start = RewriteCursor(lane: .alarm, after: 0)
}

/// One step of a rewrite pass: how many events it changed, and where the next step begins
/// (nil when the pass is over).
public struct RewriteStep: Equatable, Sendable {
    public var rewritten: Int
    public var next: RewriteCursor?
}

/// What the platform said about one event of a batch.
public enum DeliveryOutcome: Equatable, Sendable {
    /// Accepted or already known (a duplicate): it leaves the outbox.
    case delivered
    /// Received by the platform (202), whose operators have not yet acknowledged it: it leaves the
    /// queue for the followed alarms, polled at `location` until acknowledged.
    case deliveredFollowing(location: String)
    /// Refused as invalid: it moves to the dead letters with the reason, never silently dropped.
    case rejected(reason: String)
}

public struct DeadLetter: Equatable, Sendable {
    public var seq: UInt64
    public var eventID: EventID
    public var type: String
    public var eventClass: String
    public var reason: String
    public var rejectedAt: WallTime
}

public struct LaneStatus: Equatable, Sendable {
    public var depth: Int
    public var bytes: Int64
    public var oldest: WallTime?

    public init(depth: Int, bytes: Int64, oldest: WallTime?) {
        self.depth = depth
        self.bytes = bytes
        self.oldest = oldest
    }

    public static let empty = LaneStatus(depth: 0, bytes: 0, oldest: nil)
}

/// What `vaktpost queue` shows.
public struct OutboxStatus: Equatable, Sendable {
    public var lanes: [Lane: LaneStatus]
    public var deadLetters: Int
    public var evictedLog: Int64
    public var coalescedState: Int64
    /// Events waiting in memory because the disk takes no writes.
    public var inMemory: Int
    public var nextSeq: UInt64
    /// Alarms the platform received that no operator has acknowledged yet.
    public var awaitingAcknowledgement: Int = 0
    /// Why the disk takes no writes, while it does not (`StorageHold.cause`).
    public var writeFailure: String? = nil
}

/// The queue at a glance (`Outbox.summary`): cheap enough for every heartbeat.
public struct QueueSummary: Equatable, Sendable {
    /// Events queued, on disk and in memory.
    public var depth: Int
    /// When the event queued longest (the lowest seq) occurred.
    public var oldest: WallTime?
    public var nextSeq: UInt64
    public var evictedLog: Int64
}

public enum OutboxError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The disk takes no writes (`cause`) and the memory queue holds as many alarms as it may:
    /// this event was not accepted.
    case memoryFull(limit: Int, cause: String)
    /// A stand-in outbox holds events whose seqs this outbox already gave to others.
    case standInClash(events: Int, path: String)

    public var description: String {
        switch self {
        case .standInClash(let events, let path):
            return "\(events) events of the stand-in outbox \(path) have seqs this outbox already gave out; "
                + "nothing was taken in and the file is kept: send it to support"
        case .memoryFull(let limit, let cause):
            return "the outbox cannot write (\(cause)) and \(limit) alarm events already wait in memory; "
                + "free disk space on the hub, or replace its SD card if the kernel log (dmesg) shows I/O errors, now"
        }
    }
}

/// Why the outbox holds events in memory: the disk took no writes.
public struct StorageHold: Equatable, Sendable {
    /// `outbox.disk_full` or `outbox.write_failed`: the technical event raised for it.
    public var type: EventType
    public var eventID: EventID
    /// SQLite's words for the failure (`disk I/O error`, `database is locked`, ...).
    public var cause: String
}

/// Makes the outbox's own technical events (`outbox.pressure`, `outbox.disk_full`,
/// `outbox.write_failed`, `outbox.recovered`): the caller knows the clocks and the boot id.
public typealias TechnicalEventMaker = (_ type: EventType, _ state: EventState, _ correlation: EventID?, _ data: [(String, JSONValue)]) -> Event

/// An alarm the platform has received and the hub follows until an operator acknowledges it.
public struct FollowedAlarm: Equatable, Sendable {
    public var event: StoredEvent
    /// The platform's status resource (`Location` of the 202), relative to the base URL.
    public var location: String
    public var acceptedAt: WallTime
    /// received, presented, acknowledged, closed: the last status the platform gave.
    public var status: String
    /// The `alarm.unacknowledged` event raised for it, once escalated (never twice for one alarm).
    public var escalation: EventID?

    public init(event: StoredEvent, location: String, acceptedAt: WallTime, status: String, escalation: EventID?) {
        self.event = event
        self.location = location
        self.acceptedAt = acceptedAt
        self.status = status
        self.escalation = escalation
    }
}
