#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Outbox
import Synchronization
import VaktpostCore
import VaktpostPosix

/// The outbox as the agent's threads share it: every use goes through one lock, which is what
/// makes sharing this non-Sendable class safe; and a writer, on a thread of its own, that stores
/// what the rules hand over.
///
/// Why a writer: a write can hang instead of failing (an SD card busy in its firmware, a USB disk
/// the kernel retries for 30 s at a time). The thread inside `pwrite` cannot be woken, and the
/// lock it holds cannot be taken. If the rules stored their events themselves, they would stop
/// with it, and an alarm pressed meanwhile would wait for the disk. So the rules hand their events
/// over (`hand`) and wait for the writer at most `expressAfter`. Past that the write is slow, or
/// hangs (`hangAfter`): the rules go on without waiting, what they hand over waits here (bounded,
/// alarms never dropped), and the alarm lane sends its alarms from here (`alarmToExpress`).
///
/// The alarm lane writes nothing itself: it reads its next alarm (`nextAlarm`), and what the
/// platform said is settled by the writer (`delivered`), as soon as the alarm is written, in the
/// same hold of the lock. So a write that hangs is never the alarm lane's own, an alarm is never
/// sent twice for a hang, and never counted as delivered before it was. Whoever's write hangs
/// (the writer's, the bulk lane's, the follower's), the alarms waiting for the disk or read from
/// it last are sent from here once the outbox has been busy `expressAfter`.
///
/// Seqs are taken when events are handed over (`SeqCounter`), so that an alarm goes out with
/// the seq it will be stored with; while a write hangs, state and log events get theirs when
/// written instead (`stamp`).
public final class LockedOutbox: @unchecked Sendable {
    private let lock = Mutex(())
    private let outbox: Outbox
    let seqs: SeqCounter
    /// Events handed over and not written at most (state and log are dropped past it, the
    /// sensor with the most waiting first; alarm-lane events are refused past it).
    let bound: Int
    let handover = Mutex(Handover())
    let writer = BackgroundLoop(label: "vaktpost.outbox.writer")
    /// Signalled when the writer has finished a write: the rules may be waiting for it.
    let wroteOne = DispatchSemaphore(value: 0)
    /// Since when (boot clock ns) the lock has been held, 0 when free: a hold of `hangAfter` is a
    /// write that hangs, whichever thread's it is.
    let heldSince = Atomic<UInt64>(0)
    /// Events the outbox did not take (they are lost): said by the daemon, loudly.
    let refused: @Sendable (_ events: [Event], _ error: any Error) -> Void

    /// How long a write runs before it counts as one that hangs: handovers stop waiting for it at
    /// all, state events get their seqs only when written (`stamp`), and the daemon reports it
    /// after 5 s. An SD card's fsync takes milliseconds, a slow one's a few hundred; a second is a
    /// card that hangs.
    public static let hangAfter: UInt64 = 1_000_000_000

    /// How long the rules wait for a write before going on without it, and how long the outbox
    /// may be busy before the alarms waiting for it are sent from memory (`alarmToExpress`): a
    /// card that pauses a sync for its own garbage collection, up to a second, holds neither the
    /// readings behind a handover nor an alarm that long. Sent first and stored a moment later,
    /// an alarm a crash catches in between is at least with the platform; waiting, it would be
    /// nowhere.
    public static let expressAfter: UInt64 = 250_000_000

    /// Wakes the delivery lanes (the daemon's `written`): after a write, and while a handover
    /// with alarms waits past `expressAfter`, so the alarm lane looks at once.
    let wakeLanes = Mutex<@Sendable () -> Void>({})

    struct Handover {
        /// Handed over, not yet taken by the writer, in order.
        var queue: [Event] = []
        var ruleState: EngineState?
        /// Taken by the writer, being written (since `writingSince`, boot clock ns).
        var writing: [Event] = []
        var writingSince: UInt64?
        /// The rule state in the write running, if it carries one.
        var writingRuleState: EngineState?
        var writerRunning = false
        /// Hand-overs so far, and those written (or refused) so far: a hand-over's number tells
        /// the rules whether theirs is written.
        var handed = 0
        var written = 0
        var refusedHandovers: ClosedRange<Int>?
        /// Alarms the alarm lane delivered, with what the platform said: settled by the writer,
        /// once they are written if they were sent from here. The alarm lane skips them.
        var delivered: [EventID: Delivery] = [:]
        /// A delivery came that the writer has not seen yet (it settles them with its next write).
        var settleDue = false
        /// Deliveries so far: a read of the alarm lane's made before the last one is out of date.
        var deliveryCount = 0
        /// Alarm-lane events the writer wrote so far: a read made before the last one misses it.
        var alarmsWritten = 0
        /// The alarm queue as the alarm lane last read it, and alarms written since: what it sends
        /// from here while another thread's write hangs.
        var alarmsAsRead: [StoredEvent] = []
        /// The followed alarms as last read, and changes to them (or to alarms delivered, not yet
        /// recorded) not yet written: the follower goes on from these while a write hangs.
        var followedAsRead: [FollowedAlarm] = []
        var followUps: [EventID: FollowUp] = [:]
        /// Housekeeping writes for the writer to do after the events (`later`).
        var jobs: [@Sendable (Outbox) -> Void] = []
        /// Written, with their seqs, not yet taken by the daemon (its list of recent events).
        var stored: [Event] = []
        /// State and log events dropped because too many waited; taken by the daemon to say so.
        var dropped = 0

        var waiting: Int { queue.count + writing.count }

        func unwritten(_ id: EventID) -> Bool {
            writing.contains { $0.eventID == id } || queue.contains { $0.eventID == id }
        }

        func hung(at now: UInt64) -> Bool {
            writingSince.map { LockedOutbox.elapsed(since: $0, at: now) >= LockedOutbox.hangAfter } ?? false
        }

        /// The deliveries not yet recorded, in seq order.
        var deliveries: [Delivery] { delivered.values.sorted { $0.batch.events[0].seq < $1.batch.events[0].seq } }

        /// Alarms delivered whose events are in the outbox: for the writer to settle.
        var settleable: [Delivery] { deliveries.filter { !unwritten($0.batch.events[0].eventID) } }
    }

    struct Delivery {
        var batch: OutboxBatch
        var outcomes: [EventID: DeliveryOutcome]
        var at: WallTime
    }

    /// The alarm lane's reads run here, not on the lane: a read can hang too (a page not in
    /// SQLite's cache, read from a card busy in its firmware), and the lane must not sit in it.
    let alarmReads = DispatchQueue(label: "vaktpost.outbox.alarm-read")
    /// The alarm lane's read running or not yet taken: the lane waits for it, not for another.
    let alarmRead = Mutex<AlarmRead?>(nil)
    /// The alarm lane's read of the outbox: its next alarms, skipping those delivered and not yet
    /// recorded. A parameter so that tests can make it hang.
    let readAlarms: @Sendable (Outbox, Set<EventID>) throws -> [StoredEvent]

    public convenience init(_ outbox: Outbox, bound: Int = 1000, refused: @escaping @Sendable (_ events: [Event], _ error: any Error) -> Void = { _, _ in }) {
        self.init(outbox, bound: bound, refused: refused, readAlarms: { try $0.queuedAlarms(skipping: $1, limit: 32) })
    }

    init(_ outbox: Outbox, bound: Int, refused: @escaping @Sendable (_ events: [Event], _ error: any Error) -> Void,
         readAlarms: @escaping @Sendable (Outbox, Set<EventID>) throws -> [StoredEvent]) {
        self.outbox = outbox
        self.seqs = outbox.seqs
        self.bound = bound
        self.refused = refused
        self.readAlarms = readAlarms
    }

    public func with<T>(_ body: (Outbox) throws -> T) throws -> T {
        try lock.withLock { _ in
            held()
            defer { released() }
            return try body(outbox)
        }
    }

    /// Inside the lock: marks how long it is held, and, as it is let go, whether the outbox holds
    /// events in memory (the disk refused a write), for those who may not take the lock to ask.
    func held() { heldSince.store(SystemClock.boottime(), ordering: .relaxed) }
    func released() {
        holdingInMemory.store(outbox.hold != nil, ordering: .relaxed)
        heldSince.store(0, ordering: .relaxed)
    }

    /// Whether the outbox held events in memory when its lock was last let go.
    let holdingInMemory = Atomic<Bool>(false)

    /// How long (ns) the outbox has been busy: the writer's write running (waiting for the lock
    /// included), or the lock held, whichever is longer; 0 when neither.
    func busy(_ h: Handover, at now: UInt64) -> UInt64 {
        let since = heldSince.load(ordering: .relaxed)
        return max(since == 0 ? 0 : Self.elapsed(since: since, at: now), h.writingSince.map { Self.elapsed(since: $0, at: now) } ?? 0)
    }

    /// Nanoseconds from `start` to `now`, 0 if `start` is later: callers read `now` before taking
    /// the handover's lock, and a write (or a hold of the outbox's lock) may begin in between.
    /// Wrapped around, that was a write hanging for 584 years, and a trap converting it to a
    /// `Duration` (`hangingFor`): the agent died.
    static func elapsed(since start: UInt64, at now: UInt64) -> UInt64 { now > start ? now - start : 0 }

    /// As `with`, for those who must not wait for a write that hangs (the alarm lane, the
    /// heartbeat, the rules' housekeeping): nil when the outbox was not free within `limit`.
    public func with<T>(within limit: Duration, _ body: (Outbox) throws -> T) throws -> T? {
        let deadline = SystemClock.boottime() + UInt64(limit.nanoseconds)
        while true {
            var result: Result<T, any Error>? = nil
            _ = lock.withLockIfAvailable { _ in
                held()
                defer { released() }
                result = Result { try body(outbox) }
            }
            if let result { return try result.get() }
            if SystemClock.boottime() >= deadline { return nil }
            usleep(2000)
        }
    }

    // MARK: The writer

    /// `written`: called after each write, before the rules waiting for it are told (the
    /// daemon wakes the delivery lanes: an alarm's way to the platform is one thread shorter).
    public func startWriter(written: @escaping @Sendable () -> Void = {}) {
        handover.withLock { $0.writerRunning = true }
        wakeLanes.withLock { $0 = written }
        writer.start { [self] in writeLoop(written: written) }
    }

    /// Writes everything handed over, then ends the writer: a hand-over after this is written
    /// at once, by whoever hands it over. Waits for a write that hangs (a stop cannot abandon it:
    /// what waits for it would be lost; the daemon asks systemd for time meanwhile, `hangingFor`).
    public func stopWriter() {
        handover.withLock { $0.writerRunning = false }
        writer.stop()
    }

    public enum Handed: Equatable, Sendable {
        /// In the outbox (on disk, or held in memory by it if the disk refuses writes).
        case stored
        /// With the writer, whose write is slow or hangs: stored when it returns; its alarms are
        /// sent meanwhile.
        case behind
        /// Not taken: the outbox or this queue is full of alarms (said through `refused`).
        case refused
    }

    /// Hands the rules' events and the state that produced them to the writer, and waits up to
    /// `expressAfter` for them to be stored (not at all while a write hangs). Called with the
    /// rules' lock held: one hand-over at a time.
    @discardableResult
    public func hand(_ events: [Event], ruleState: EngineState?) -> Handed {
        let stamped = stamp(events)
        enum Taken { case queued(Int, hung: Bool), direct, full }
        let taken = handover.withLock { h -> Taken in
            guard h.writerRunning else { return .direct }
            let alarms = stamped.count { $0.lane == .alarm }
            if alarms > 0, (h.queue + h.writing).count(where: { $0.lane == .alarm }) + alarms > bound { return .full }
            h.queue += stamped
            if let ruleState { h.ruleState = ruleState }
            dropExcess(&h)
            h.handed += 1
            return .queued(h.handed, hung: h.hung(at: SystemClock.boottime()))
        }
        switch taken {
        case .direct:
            do {
                let seqs = try with { try $0.append(stamped, ruleState: ruleState) }
                handover.withLock { h in h.stored += zip(stamped, seqs).map { Self.with($0, seq: $1) } }
                return .stored
            } catch {
                refused(stamped, error)
                return .refused
            }
        case .full:
            refused(stamped, DaemonError("\(bound) alarm-lane events already wait for a write that hangs"))
            return .refused
        case .queued(let number, let hung):
            writer.wake()
            return hung ? .behind : waitForWrite(number, alarms: stamped.contains { $0.lane == .alarm })
        }
    }

    /// The events with their seqs, taken now, in order. While a write hangs, only alarm-lane
    /// events: the others get theirs when written, so that those dropped while waiting take no
    /// seq, and a hang, however long, hands out no more seqs than an unclean stop skips.
    public func stamp(_ events: [Event]) -> [Event] {
        let hung = handover.withLock { $0.hung(at: SystemClock.boottime()) }
        return events.map { e in
            var e = e
            if e.seq == nil, !hung || e.lane == .alarm { e.seq = seqs.take() }
            return e
        }
    }

    func waitForWrite(_ number: Int, alarms: Bool) -> Handed {
        let deadline = SystemClock.boottime() + Self.expressAfter
        while true {
            let now = SystemClock.boottime()
            let outcome = handover.withLock { h -> Handed? in
                if h.written >= number { return h.refusedHandovers?.contains(number) == true ? .refused : .stored }
                return h.hung(at: now) || now >= deadline ? .behind : nil
            }
            if let outcome {
                // Its alarms still waiting for the disk go from memory now: the alarm lane is told
                // to look (idle, it would look only after its own second, or after the write).
                if outcome == .behind && alarms { wakeLanes.withLock { $0 }() }
                return outcome
            }
            _ = wroteOne.wait(timeout: .now() + .nanoseconds(Int(deadline &- now)))
        }
    }

    /// Past the bound, state and log events go: the oldest of the sensor (or event type) with
    /// the most waiting, so that a flooding sensor loses its own and not the others' (as the
    /// intake's queue does). A tenth of the bound at once, so a flood costs one pass per tenth.
    func dropExcess(_ h: inout Handover) {
        guard h.waiting > bound else { return }
        let key = { (e: Event) in e.sensor?.rawValue ?? e.type.rawValue }
        var counts: [String: Int] = [:]
        for e in h.queue where e.lane == .bulk { counts[key(e), default: 0] += 1 }
        var drop: [String: Int] = [:]
        var excess = h.waiting - bound * 9 / 10
        while excess > 0, let (most, n) = counts.max(by: { $0.value < $1.value }), n > 0 {
            counts[most] = n - 1
            drop[most, default: 0] += 1
            excess -= 1
        }
        guard !drop.isEmpty else { return }
        var kept: [Event] = []
        kept.reserveCapacity(h.queue.count)
        for e in h.queue {
            if e.lane == .bulk, let n = drop[key(e)], n > 0 {
                drop[key(e)] = n - 1
                h.dropped += 1
            } else {
                kept.append(e)
            }
        }
        h.queue = kept
    }

    func writeLoop(written: @Sendable () -> Void) {
        while true {
            let chunk = handover.withLock { h -> (events: [Event], state: EngineState?, through: Int, jobs: [@Sendable (Outbox) -> Void])? in
                guard !h.queue.isEmpty || h.ruleState != nil || !h.jobs.isEmpty || h.settleDue else { return nil }
                h.settleDue = false
                h.writing = h.queue
                h.queue = []
                defer { (h.ruleState, h.jobs) = (nil, []) }
                h.writingSince = SystemClock.boottime()
                h.writingRuleState = h.ruleState
                return (h.writing, h.ruleState, h.handed, h.jobs)
            }
            guard let chunk else {
                if writer.isStopped { return }  // everything handed over is written
                writer.sleep(.seconds(1))
                continue
            }
            var failure: (any Error)? = nil
            lock.withLock { _ in
                held()
                defer { released() }
                var seqs: [UInt64] = []
                if !chunk.events.isEmpty || chunk.state != nil {
                    do { seqs = try outbox.append(chunk.events, ruleState: chunk.state) } catch { failure = error }
                }
                for job in chunk.jobs { job(outbox) }
                let delivered = handover.withLock { h -> [Delivery] in
                    let from = h.written + 1
                    h.written = chunk.through
                    h.writing = []
                    h.writingSince = nil
                    h.writingRuleState = nil
                    if failure != nil, from <= chunk.through { h.refusedHandovers = from...chunk.through }
                    let written = zip(chunk.events, seqs).map { Self.with($0, seq: $1) }
                    h.stored += written
                    if h.stored.count > 1000 { h.stored.removeFirst(h.stored.count - 1000) }
                    let alarms = written.filter { $0.lane == .alarm }
                    h.alarmsWritten += alarms.count
                    h.alarmsAsRead += alarms.prefix(max(0, bound - h.alarmsAsRead.count)).map(StoredEvent.init)
                    // Sent from memory, then refused by the outbox: nothing left to settle.
                    if failure != nil { for e in chunk.events { h.delivered[e.eventID] = nil } }
                    return h.settleable
                }
                // In the same hold of the lock: the alarm lane never finds them queued again.
                // One that cannot be recorded stays, skipped by the lane, tried with the next write.
                var settled: Set<EventID> = []
                for d in delivered where (try? outbox.settle(d.batch, outcomes: d.outcomes, at: d.at)) != nil {
                    settled.insert(d.batch.events[0].eventID)
                }
                handover.withLock { h in
                    for id in settled { h.delivered[id] = nil }
                    h.alarmsAsRead.removeAll { settled.contains($0.eventID) }
                }
            }
            if !chunk.events.isEmpty { written() }
            wroteOne.signal()
            if let failure { refused(chunk.events, failure) }
        }
    }

    /// A write of the agent's housekeeping (the last-alive mark, a retry of the disk while events
    /// are held in memory), done by the writer after what waits: the caller never waits for the
    /// disk. Without a writer (tools, tests), at once.
    public func later(_ job: @escaping @Sendable (Outbox) -> Void) {
        let queued = handover.withLock { h in
            if h.writerRunning { h.jobs.append(job) }
            return h.writerRunning
        }
        if queued { writer.wake() } else { try? with(job) }
    }

    static func with(_ e: Event, seq: UInt64) -> Event {
        var e = e
        e.seq = seq
        return e
    }

    // MARK: What the others ask while a write hangs

    /// The events stored since the last call, with their seqs (the daemon's list of recent events).
    public func takeStored() -> [Event] {
        handover.withLock { h in
            defer { h.stored = [] }
            return h.stored
        }
    }

    /// How long the outbox has been busy, once that is `hangAfter` or more (a write that hangs,
    /// whoever's: the writer's, or one holding the lock); nil otherwise.
    public var hangingFor: Duration? {
        let now = SystemClock.boottime()
        let nanoseconds = handover.withLock { busy($0, at: now) }
        return nanoseconds >= Self.hangAfter ? .nanoseconds(Int64(nanoseconds)) : nil
    }

    /// How long the write in progress has been running, if one is.
    public var writeRunning: Duration? {
        handover.withLock { h in h.writingSince.map { .nanoseconds(Int64(SystemClock.boottime() &- $0)) } }
    }

    /// Events handed over and not yet written.
    public var waitingForWrite: Int { handover.withLock { $0.waiting } }

    /// What only memory holds while a write runs or waits (`MemoryCopy` keeps a copy of it): the
    /// events handed over and not yet written, in order, the newest rule state not yet written,
    /// and the number of the last hand-over among them.
    public func unwritten() -> (events: [Event], ruleState: EngineState?, through: Int) {
        handover.withLock { h in (h.writing + h.queue, h.ruleState ?? h.writingRuleState, h.handed) }
    }

    /// State and log events dropped since the last call (too many waited for a write that hangs).
    public func takeDropped() -> Int {
        handover.withLock { h in
            defer { h.dropped = 0 }
            return h.dropped
        }
    }

    /// The alarm lane's next alarm, read from the outbox (`pick` chooses among those waiting, in
    /// send order; `AlarmTurns`): nil when it was not read within `limit`
    /// (the outbox busy with a write that hangs, or this read hanging: `alarmToExpress` has the
    /// alarms once the outbox has been busy `expressAfter`), .some(nil) when none waits. A read only,
    /// on a thread of its own, and it keeps what it read for `alarmToExpress`.
    ///
    /// A read not done within `limit` (the call's, a fresh read included) is not given up: the
    /// next call waits for it again (no second read queued behind one that hangs; on a loaded
    /// machine a slow read is still used).
    /// Its answer is dropped, and a fresh read made, if alarms were delivered or written since it
    /// read, or if it found the outbox busy and was begun by an earlier call: a write that hung
    /// then may be over, and its alarm written (waited for, the lane would miss it until woken
    /// again).
    public func nextAlarm(within limit: Duration, pick: ([StoredEvent]) -> StoredEvent? = { $0.first }) throws -> StoredEvent?? {
        // One limit for the call, a fresh read included: the lane looks at what waits in memory
        // (`alarmToExpress`) only between calls.
        let deadline = DispatchTime.now() + .nanoseconds(Int(limit.nanoseconds))
        for _ in 0..<2 {
            let (read, begun) = alarmRead.withLock { pending -> (AlarmRead, Bool) in
                if let pending { return (pending, false) }
                let read = AlarmRead()
                pending = read
                alarmReads.async { [self] in
                    read.result.withLock { $0 = Result { try readNextAlarm(within: limit) } }
                    read.done.signal()
                }
                return (read, true)
            }
            guard read.done.wait(timeout: deadline) == .success else { return nil }
            alarmRead.withLock { $0 = nil }
            guard let answer = try read.result.withLock({ $0 })?.get() else {
                if begun { return nil }  // the outbox stayed busy
                continue
            }
            if handover.withLock({ answer.deliveries == $0.deliveryCount && answer.alarmsWritten == $0.alarmsWritten }) {
                return .some(pick(answer.queued))
            }
        }
        return nil
    }

    /// A read of the alarm lane's not yet taken: the next `nextAlarm` waits for it (again).
    public var alarmReadPending: Bool { alarmRead.withLock { $0 != nil } }

    /// One read of the alarm lane's, on `alarmReads`.
    final class AlarmRead: Sendable {
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<Result<AlarmsRead?, any Error>?>(nil)
    }

    /// The alarms waiting as read, and the deliveries and alarm writes counted when read.
    struct AlarmsRead {
        var queued: [StoredEvent]
        var deliveries: Int
        var alarmsWritten: Int
    }

    func readNextAlarm(within limit: Duration) throws -> AlarmsRead? {
        try with(within: limit) { o in
            let (skipping, deliveries, written) = handover.withLock { (Set($0.delivered.keys), $0.deliveryCount, $0.alarmsWritten) }
            let queued = try readAlarms(o, skipping)
            handover.withLock { $0.alarmsAsRead = queued }
            return AlarmsRead(queued: queued, deliveries: deliveries, alarmsWritten: written)
        }
    }

    /// While the outbox is slow or hangs (busy `expressAfter`): the first alarm-lane event, among
    /// those waiting for the write and those read or written last, that the alarm lane has not
    /// delivered yet (highest priority, then oldest, as `pick` takes them), for the alarm lane
    /// to send from here.
    public func alarmToExpress(pick: ([StoredEvent]) -> StoredEvent? = { $0.first }) -> StoredEvent? {
        let now = SystemClock.boottime()
        return handover.withLock { h in
            guard busy(h, at: now) >= Self.expressAfter else { return nil }
            let unwritten = (h.writing + h.queue).filter { $0.lane == .alarm }.map(StoredEvent.init)
            return pick((unwritten + h.alarmsAsRead)
                .filter { h.delivered[$0.eventID] == nil }
                .sorted(by: Outbox.sendOrder))
        }
    }

    /// What the platform said about an alarm the alarm lane sent, and when: settled by the writer,
    /// once the alarm is written if it was sent from memory. The lane never waits for the disk.
    /// Without a writer (tools, tests), settled at once.
    public func delivered(_ batch: OutboxBatch, outcomes: [EventID: DeliveryOutcome], at: WallTime) throws {
        let queued = handover.withLock { h in
            if h.writerRunning {
                h.delivered[batch.events[0].eventID] = Delivery(batch: batch, outcomes: outcomes, at: at)
                h.settleDue = true
            }
            h.deliveryCount += 1
            return h.writerRunning
        }
        if queued { writer.wake() } else { try with { try $0.settle(batch, outcomes: outcomes, at: at) } }
    }

    // MARK: Following, through a write that hangs

    /// The alarms received by the platform and followed until an operator takes them: as the
    /// outbox has them, or, while a write hangs, as last read, with those delivered and not yet
    /// recorded by the writer, and the changes still waiting for the write. An alarm received before a hang,
    /// or during one, is escalated in time all the same.
    public func followedAlarms() -> [FollowedAlarm] {
        writeFollowUps()
        if let read = (try? with(within: .milliseconds(200), { try $0.followedAlarms() })) ?? nil {
            handover.withLock { $0.followedAsRead = read }
        }
        return handover.withLock { h in
            let known = Set(h.followedAsRead.map(\.event.eventID))
            let fromMemory = h.deliveries.compactMap { d -> FollowedAlarm? in
                let e = d.batch.events[0]
                guard !known.contains(e.eventID), case .deliveredFollowing(let location)? = d.outcomes[e.eventID] else { return nil }
                return FollowedAlarm(event: e, location: location, acceptedAt: d.at, status: "received", escalation: nil)
            }
            return (h.followedAsRead + fromMemory).compactMap { Outbox.applying(h.followUps[$0.event.eventID], to: $0) }
        }
    }

    /// Records a change to a followed alarm: at once, or, while a write hangs (or the alarm is
    /// not written yet), after it. Never lost: an escalation forgotten would be raised, and sent
    /// to the secondary platform, again.
    public func follow(_ id: EventID, _ change: FollowUp) {
        handover.withLock { $0.followUps[id] = change }
        writeFollowUps()
    }

    /// Writes the follow-ups waiting, those whose alarm is written, if the outbox is free.
    func writeFollowUps() {
        let due = handover.withLock { h in h.followUps.filter { !h.unwritten($0.key) && h.delivered[$0.key] == nil } }
        guard !due.isEmpty else { return }
        let written = (try? with(within: .milliseconds(200)) { o -> Bool in
            for (id, change) in due { try o.follow(id, change) }
            return true
        }) ?? nil
        guard written == true else { return }
        handover.withLock { h in
            for (id, change) in due where h.followUps[id] == change { h.followUps[id] = nil }
            h.followedAsRead = h.followedAsRead.compactMap { Outbox.applying(due[$0.event.eventID], to: $0) }
        }
    }
}
