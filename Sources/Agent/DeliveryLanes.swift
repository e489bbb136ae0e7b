import Dispatch
import Outbox
import Synchronization
import Uplink
import VaktpostCore
import VaktpostPosix

/// Where and how the lanes deliver.
public struct UplinkSettings: Sendable {
    public var baseURL: String
    /// Also tried for an alarm the primary has not accepted within 10 s.
    public var secondaryURL: String?
    public var hubID: String
    public var tls: TLSSettings
    public var alarmBackoff: Backoff
    public var bulkBackoff: Backoff
    /// How long an idle lane waits before looking at the outbox again (a `wake()` is sooner).
    public var idle: Duration
    /// While alarm-lane events wait, the bulk lane holds back for up to this long, so that when
    /// the link returns the alarms go first; past it, bulk goes on (a broken alarm endpoint must
    /// not stop everything else).
    public var alarmsFirstGrace: Duration
    /// The bulk lane waits up to this long for a fuller batch while the queue holds fewer than
    /// a batch of fresh events: one request and two outbox writes per batch instead of per event.
    public var bulkLinger: Duration
    /// How long a lane waits before looking again after the outbox could not be read (a dead
    /// card); an event held in memory meanwhile wakes it sooner.
    public var afterUnreadable: Duration

    public init(baseURL: String, secondaryURL: String? = nil, hubID: String, tls: TLSSettings,
                alarmBackoff: Backoff = .alarm, bulkBackoff: Backoff = .bulk, idle: Duration = .seconds(1),
                alarmsFirstGrace: Duration = .seconds(10), bulkLinger: Duration = .milliseconds(500),
                afterUnreadable: Duration = .seconds(1)) {
        self.bulkLinger = bulkLinger
        self.afterUnreadable = afterUnreadable
        self.baseURL = baseURL
        self.secondaryURL = secondaryURL
        self.hubID = hubID
        self.tls = tls
        self.alarmBackoff = alarmBackoff
        self.bulkBackoff = bulkBackoff
        self.idle = idle
        self.alarmsFirstGrace = alarmsFirstGrace
    }
}

/// The two delivery lanes between the outbox and the platform (docs/uplink.md). Each lane runs on
/// its own queue with its own connection; the outbox is locked only to take or settle a batch, so
/// an alarm is never behind the bulk lane's request, backlog or backoff. The alarm lane only
/// reads the outbox (what the platform said is recorded by the outbox's writer), so no write of
/// the disk is ever on an alarm's way out.
///
/// When the link returns after an outage, alarms go first: the bulk lane holds back while the
/// alarm lane has undelivered events (up to `alarmsFirstGrace`).
///
/// Alarm lane: one event per `POST .../alarms`, backoff 0.25-1 s, never gives up; after 10 s
/// without acceptance it alternates with the secondary URL; an alarm the platform keeps failing
/// while it works is passed over in turns (`AlarmTurns`). Bulk lane: stored batches to
/// `POST .../events:batch` with their Idempotency-Key, backoff 2-300 s. Both honour Retry-After
/// (the alarm lane at most 30 s of it); 400/422 dead-letter; 401/403 are reported and retried slowly.
public final class DeliveryLanes: Sendable {
    public enum Report: Equatable, Sendable {
        /// A successful exchange with the platform (feeds the link supervisor).
        case exchanged(at: WallTime)
        /// Events moved to the dead letters, and why (`uplink.rejected`); `damagedAlarms`: those
        /// of them alarms whose stored bytes the card damaged, to be made again (`HubControl`).
        case rejected(count: Int, reason: String, damagedAlarms: [StoredEvent] = [])
        /// The platform refused the hub's certificate (`uplink.unauthorized`).
        case unauthorized(status: Int)
        /// An attempt that will be retried, and why (named in `uplink.lost` if the link is lost).
        case failed(reason: String)
        /// An alarm had no answer on its connection within `after`, went again on a new one
        /// (`AlarmHedge`), and the platform answered that one with `status`.
        case sentAgain(after: Duration, status: Int)
        /// The platform works, yet keeps failing this alarm (`AlarmTurns`): the alarms behind it
        /// go first, and it is tried again in turn (`alarm.undelivered`).
        case alarmUndelivered(StoredEvent, lastError: String)
        /// An alarm reported undelivered has left the queue after all: taken by the platform
        /// (`delivered`), or refused for good (a dead letter, `uplink.rejected` says why).
        case alarmUndeliveredEnded(StoredEvent, delivered: Bool)
    }

    let settings: UplinkSettings
    let outbox: LockedOutbox
    let now: @Sendable () -> WallTime
    let report: @Sendable (Report) -> Void
    let loops = [Lane.alarm: BackgroundLoop(label: "vaktpost.uplink.alarm"), .bulk: BackgroundLoop(label: "vaktpost.uplink.bulk")]
    let work = [Lane.alarm: DispatchSemaphore(value: 0), .bulk: DispatchSemaphore(value: 0)]
    /// Signalled whenever the alarm lane settles something: the bulk lane may be waiting for it.
    let alarmSettled = DispatchSemaphore(value: 0)
    let bootID: String
    let boottime: @Sendable () -> UInt64
    /// Bumped by every successful exchange: a lane backing off retries at once, because the
    /// platform is evidently back (after an outage the backlog need not wait out a 5-minute backoff);
    /// and by the bulk lane asking the alarm lane to try once more now (`alarmsFirst`).
    let platformAnswered = Atomic<Int>(0)
    /// Bumped by every successful exchange only (not by the bulk lane cutting the alarm lane's
    /// backoff short): the platform seen to work, for `AlarmTurns`. A nudge counted as a success
    /// would have alarms passed over, and reported, in an outage.
    let platformWorked = Atomic<Int>(0)
    /// When the latest-sent of the hub's requests the platform answered with success was sent
    /// (boot clock, ns): an alarm left unanswered while the platform answered a request sent
    /// after it is one the platform hangs on (`AlarmTurns.unanswered`). Not when it was
    /// answered: a long poll sent before a platform slowed down still answers in time.
    let answeredSentAt = Atomic<UInt64>(0)
    /// Asks for a request of the hub's own to go now (the heartbeat), to tell a platform that
    /// hangs on an alarm from one that is slow or away (`probeAtHalf`).
    let probe: @Sendable () -> Void
    let alarmProbes = DispatchQueue(label: "vaktpost.uplink.alarm-probe")
    /// Set while every alarm the alarm lane could send is one the platform keeps failing
    /// (passed over, tried alone): the bulk lane does not hold back for it (`alarmsFirst`).
    let alarmsPassedOverOnly = Atomic<Bool>(false)
    /// Set to give up the alarm lane's try of an alarm, for another alarm waiting (`watchTry`).
    let giveUpTry = Atomic<Bool>(false)
    /// Set while a watch waits for the platform to answer a request sent after half an alarm's
    /// attempt (`watchTry`): each such answer wakes it.
    let watchingAnswers = Atomic<Bool>(false)
    let alarmWatch = DispatchQueue(label: "vaktpost.uplink.alarm-watch")
    /// The alarm lane's attempts begun and finished (one at a time: the attempt begun as the
    /// nth finishes as the nth), and its settled events, for the bulk lane's alarms-first rule.
    let alarmBegun = Atomic<Int>(0)
    let alarmAttempts = Atomic<Int>(0)
    let alarmProgress = Atomic<Int>(0)
    /// Set while queued stamps are being corrected (`PlatformLink.correctClock`): the bulk lane
    /// makes no new batch, so none carries a stamp about to change. The alarm lane is never held.
    let bulkHeld = Atomic<Bool>(false)
    /// Sends an alarm again on a new connection when the first has no answer soon.
    let hedge: AlarmHedge
    /// Alarms an agent before this one reported undelivered, still queued (`AlarmTurns`).
    let reportedBefore: Set<EventID>
    /// The bulk lane's outbox work beside its request.
    let ahead = BulkAhead()

    public init(settings: UplinkSettings, outbox: LockedOutbox, bootID: String, now: @escaping @Sendable () -> WallTime,
                boottime: @escaping @Sendable () -> UInt64 = { SystemClock.boottime() }, probe: @escaping @Sendable () -> Void = {},
                reportedBefore: Set<EventID> = [], report: @escaping @Sendable (Report) -> Void) {
        self.settings = settings
        self.reportedBefore = reportedBefore
        self.probe = probe
        self.outbox = outbox
        self.bootID = bootID
        self.now = now
        self.boottime = boottime
        self.report = report
        hedge = AlarmHedge(tls: Self.alarmTLS(settings.tls))
    }

    /// The alarm lane's settings: the next attempt (every other one to the secondary) begins
    /// after `alarmAttempt`, so no request of it may last longer.
    static func alarmTLS(_ tls: TLSSettings) -> TLSSettings {
        var tls = tls
        tls.totalTimeout = min(tls.totalTimeout, alarmAttempt)
        return tls
    }

    /// The outbox, for storing events (then `wake()`) and for status.
    @discardableResult
    public func withOutbox<T>(_ body: (Outbox) throws -> T) throws -> T {
        try outbox.with(body)
    }

    public func start() {
        for lane in [Lane.alarm, .bulk] { loops[lane]!.start { [self] in run(lane) } }
        hedge.start()
    }

    /// Holds the bulk lane back from making new batches, or lets it go on.
    public func holdBulk(_ held: Bool) {
        if bulkHeld.exchange(held, ordering: .acquiringAndReleasing), !held { work[.bulk]!.signal() }
    }

    /// Something reached the platform (a heartbeat, say): lanes backing off try again now.
    /// `sentAt`: when the request that succeeded was sent (boot clock, ns; now if not given).
    public func platformIsBack(sentAt: UInt64? = nil) {
        let sent = sentAt ?? boottime()
        var seen = answeredSentAt.load(ordering: .acquiring)
        while seen < sent {
            let (exchanged, original) = answeredSentAt.compareExchange(expected: seen, desired: sent, ordering: .acquiringAndReleasing)
            if exchanged { break }
            seen = original
        }
        platformWorked.add(1, ordering: .releasing)
        platformAnswered.add(1, ordering: .releasing)
        if watchingAnswers.load(ordering: .acquiring) { work[.alarm]!.signal() }
    }

    /// New events are in the outbox: look now instead of at the next idle check.
    public func wake() {
        for lane in [Lane.alarm, .bulk] { work[lane]!.signal() }
    }

    public func stop() {
        requestStop()
        for lane in [Lane.alarm, .bulk] { loops[lane]!.stop() }
        hedge.loop.stop()
    }

    /// Asks both lanes to end without waiting: a request in flight is given up at libcurl's
    /// next progress call (within a second), alongside the link's other loops.
    public func requestStop() {
        for lane in [Lane.alarm, .bulk] {
            loops[lane]!.requestStop()
            work[lane]!.signal()
        }
        hedge.loop.requestStop()
    }

    // MARK: A lane

    /// How long one alarm-sized request may take (an alarm's POST, a followed alarm's status
    /// read): an alarm waits for no slow platform, after this the next attempt begins.
    static let alarmAttempt = Duration.seconds(10)

    func run(_ lane: Lane) {
        let loop = loops[lane]!
        let tls = lane == .alarm ? Self.alarmTLS(settings.tls) : settings.tls
        // The alarm lane's request is also given up once the same alarm, sent again on a new
        // connection, has been answered.
        let hedge = lane == .alarm ? hedge : nil
        guard let client = try? HTTPClient(tls: tls, abandon: { [self] in
            loop.isStopped || hedge?.answeredAgain == true || (lane == .alarm && giveUpTry.load(ordering: .acquiring))
        }) else {
            report(.rejected(count: 0, reason: "libcurl could not start; the uplink cannot send"))
            return
        }
        var rng = SystemRandomNumberGenerator()
        let backoff = lane == .alarm ? settings.alarmBackoff : settings.bulkBackoff
        var attempt = 0
        var firstTry: WallTime? = nil
        var alarmsWaitingSince: WallTime? = nil
        var recentAnswers: [Duration] = []
        // The bulk lane's batch answered and not yet settled, and the batch made while it was
        // on its way (`BulkAhead`).
        var unsettled: (batch: OutboxBatch, outcomes: [EventID: DeliveryOutcome])? = nil
        var madeAhead: OutboxBatch? = nil
        // The alarm lane's order past an alarm the platform keeps failing, and the platform's
        // successes seen so far (any request's: a heartbeat tells that it works too).
        var turns = AlarmTurns(reported: lane == .alarm ? reportedBefore : [])
        var waitingSeen: [StoredEvent] = []
        var workedSeen = platformWorked.load(ordering: .acquiring)
        /// The alarm to send of those waiting; what waited is kept for after a failure.
        func pickAlarm(_ waiting: [StoredEvent]) -> StoredEvent? {
            waitingSeen = waiting
            return turns.pick(waiting)
        }
        defer { if let u = unsettled { try? settle(u.batch, outcomes: u.outcomes) } }
        while !loop.isStopped {
            if lane == .bulk {
                // Stamps are being corrected: a batch made ahead may be dissolved under it.
                if bulkHeld.load(ordering: .acquiring) { madeAhead = nil }
                // Settled before the outbox is asked for a batch: unsettled, it is offered again.
                if madeAhead == nil, let u = unsettled {
                    unsettled = nil
                    do { try settle(u.batch, outcomes: u.outcomes) } catch { report(.failed(reason: "\(error)")) }
                }
            }
            if lane == .bulk, bulkHeld.load(ordering: .acquiring) {
                waitForWork(lane, upTo: settings.idle)
                continue
            }
            if lane == .bulk, alarmsFirst(since: &alarmsWaitingSince, loop: loop) { continue }
            if lane == .bulk, madeAhead == nil, settings.bulkLinger > .zero,
               let wait = try? outbox.with({ try $0.linger(fill: 100, upTo: settings.bulkLinger) }), wait > .zero {
                loop.sleep(wait)
                continue
            }
            let worked = platformWorked.load(ordering: .acquiring)
            if lane == .alarm, worked != workedSeen {
                workedSeen = worked
                for f in turns.platformWorks(at: boottime()) { report(.alarmUndelivered(f.event, lastError: f.lastError)) }
            }
            let batch: OutboxBatch
            do {
                // The alarm lane writes nothing on an alarm's way out: it reads the next alarm, or,
                // while a write of the outbox hangs (whoever's), takes it from memory; it never
                // waits for the outbox's lock, or for a read that hangs, longer than a moment.
                let next: OutboxBatch??
                if lane == .alarm {
                    next = try alarmToSend(pick: pickAlarm).map { $0.map(OutboxBatch.alarm) }
                } else if let ahead = madeAhead {
                    next = .some(ahead)
                    madeAhead = nil
                } else {
                    next = try outbox.with { try $0.nextBatch(maxCount: 100, maxBytes: 256 << 10, body: self.bulkBody()) }
                }
                guard let next else {
                    // Only the alarm lane's read gives up (the bulk lane waits for the outbox).
                    // Busy with a slow write or one that hangs: its alarms are offered once the
                    // outbox has been busy `LockedOutbox.expressAfter`.
                    // A read of ours still running (a loaded machine, or a read that hangs) is
                    // waited for again at once: the alarm goes as soon as it has answered.
                    if !outbox.alarmReadPending { waitForWork(lane, upTo: Self.lookAgain) }
                    continue
                }
                guard let next else {
                    waitForWork(lane, upTo: settings.idle)
                    continue
                }
                batch = next
            } catch {
                // The outbox could not be read (it says why in its own events). An event held in
                // memory meanwhile wakes the lane: from there it goes out at once, not after this.
                waitForWork(lane, upTo: settings.afterUnreadable)
                continue
            }
            let started = firstTry ?? now()
            firstTry = started
            if lane == .alarm { alarmBegun.add(1, ordering: .releasing) }
            let base = lane == .alarm && settings.secondaryURL != nil && now() - started >= .seconds(10) && attempt % 2 == 1
                ? settings.secondaryURL! : settings.baseURL
            var retryAfter: Duration? = nil
            let sentAt = boottime()
            if lane == .alarm { probeAtHalf(sentAt: sentAt, attempt: alarmBegun.load(ordering: .acquiring)) }
            // Only alarms the platform keeps failing left to send: no reason for the bulk lane to wait.
            if lane == .alarm { alarmsPassedOverOnly.store(turns.passedOver(batch.events[0]), ordering: .releasing) }
            // One the platform hangs on, tried alone: given up for another alarm stored meanwhile;
            // any other, given up for one waiting once the platform is seen to hang on it.
            let hangs = lane == .alarm && turns.hangs(batch.events[0])
            let watch = lane == .alarm ? watchTry(of: batch.events[0], sentAt: sentAt, turns: turns, cutting: client.cutter, loop: loop) : nil
            // The last batch's settle and, draining a backlog, the next batch's making go on
            // beside this request (`BulkAhead`).
            let aside = lane == .bulk && !batch.inMemory
            if aside {
                beginAhead(sending: batch, settling: unsettled)
                unsettled = nil
            }
            do {
                let response = try send(batch, lane: lane, base: base, client: client, hedged: !hangs, recentAnswers: &recentAnswers)
                _ = watch?.end()
                if aside { madeAhead = collectAhead(sending: batch) }
                switch DeliveryVerdict(status: response.status) {
                case .delivered:
                    guard let outcomes = outcomes(of: batch, lane: lane, response: response) else {
                        let reason = Self.unreadable(response)
                        report(.failed(reason: reason))
                        if lane == .alarm { turns.failed(batch.events[0], reason) }
                        break
                    }
                    if lane == .alarm, turns.done(batch.events[0]) { report(.alarmUndeliveredEnded(batch.events[0], delivered: true)) }
                    if lane == .bulk && !batch.inMemory {
                        unsettled = (batch, outcomes)
                    } else {
                        try settle(batch, outcomes: outcomes)
                    }
                    if lane == .alarm { alarmDone(progress: true) }
                    let rejected = outcomes.values.filter { if case .rejected = $0 { return true } else { return false } }.count
                    if rejected > 0 {
                        let dead = batch.events.filter { if case .rejected = outcomes[$0.eventID] { true } else { false } }
                        report(.rejected(count: rejected, reason: "the platform rejected \(rejected) event(s) of batch \(batch.id)", damagedAlarms: Self.damagedAlarms(dead)))
                    }
                    report(.exchanged(at: now()))
                    platformIsBack(sentAt: sentAt)
                    attempt = 0
                    firstTry = nil
                    continue
                case .reject:
                    let (outcomes, reason) = Self.rejection(of: batch, "HTTP \(response.status): \(problemText(response))")
                    try settle(batch, outcomes: outcomes)
                    if lane == .alarm {
                        if turns.done(batch.events[0]) { report(.alarmUndeliveredEnded(batch.events[0], delivered: false)) }
                        alarmDone(progress: true)
                    }
                    report(.rejected(count: outcomes.count, reason: reason, damagedAlarms: Self.damagedAlarms(batch.events.filter { outcomes[$0.eventID] != nil })))
                    report(.exchanged(at: now()))
                    attempt = 0
                    firstTry = nil
                    continue
                case .unauthorized:
                    report(.unauthorized(status: response.status))
                    retryAfter = .seconds(60)  // the certificate may be renewed; no point hammering
                case .retry:
                    let reason = "HTTP \(response.status): \(problemText(response))"
                    report(.failed(reason: reason))
                    if lane == .alarm { turns.failed(batch.events[0], reason) }
                    retryAfter = response.header("Retry-After").flatMap { RetryAfter.parse($0, now: now()) }
                    if lane == .alarm, let r = retryAfter { retryAfter = min(r, .seconds(30)) }
                }
            } catch {
                let givenUp = watch?.end() == true
                // A try alone of an alarm the platform hangs on, given up for another alarm: no
                // failure of anything, and that one goes now.
                if givenUp && hangs {
                    alarmDone(progress: false)
                    continue
                }
                // Network or TLS failure: the error says what to do; the lane keeps trying. A
                // request given up because the agent stops is no failure of the link.
                if !loop.isStopped {
                    let why = givenUp ? "given up for the alarm behind it" : "\(error)"
                    report(.failed(reason: why))
                    if lane == .alarm, let unanswered = unansweredWhileThePlatformWorked(sentAt: sentAt) {
                        turns.unanswered(batch.events[0], "no answer in \(unanswered) s while the platform answered the hub's other requests: \(why)", at: boottime())
                    }
                }
            }
            if aside {
                // Not answered: the batch made ahead stays stored, and is found again in turn.
                _ = collectAhead(sending: batch)
                madeAhead = nil
            }
            if lane == .alarm { alarmDone(progress: false) }
            // An alarm passed over just now: the next one goes at once, not after a backoff (the
            // platform failed that alarm, not the hub's requests).
            if lane == .alarm, retryAfter == nil, turns.passedOver(batch.events[0]) {
                if let next = turns.pick(waitingSeen), next.eventID != batch.events[0].eventID { continue }
                // The only alarm waiting: its backoff, but an alarm stored meanwhile goes at once.
                awaitAnotherAlarm(than: batch.events[0], upTo: backoff.delay(attempt: attempt, using: &rng), loop: loop, pick: pickAlarm)
                attempt += 1
                continue
            }
            let answered = platformAnswered.load(ordering: .acquiring)
            if backOff(loop, backoff.delay(attempt: attempt, retryAfter: retryAfter, using: &rng), until: answered, retryAfter: retryAfter) {
                attempt = 0
            } else {
                attempt += 1
            }
        }
    }

    /// Begins, beside the request for `batch`, the settle of the batch answered before and, if
    /// a backlog waits, the making of the next batch: both off the lane's thread, the backlog's
    /// check and the making under one hold of the outbox.
    func beginAhead(sending batch: OutboxBatch, settling: (batch: OutboxBatch, outcomes: [EventID: DeliveryOutcome])?) {
        let skipping: Set<String> = [batch.id]
        var settle: (@Sendable () throws -> Void)? = nil
        if let u = settling {
            settle = { [self] in try self.settle(u.batch, outcomes: u.outcomes) }
        }
        let next: @Sendable () throws -> OutboxBatch? = { [self] in
            guard !bulkHeld.load(ordering: .acquiring) else { return nil }
            let body = bulkBody()
            return try outbox.with { o in
                try o.backlogHolds(100) ? o.nextBatch(maxCount: 100, maxBytes: 256 << 10, skipping: skipping, body: body) : nil
            }
        }
        ahead.begin(settle: settle, next: next)
    }

    /// What was done beside the request for `batch`: the batch made ahead, if any (a settle
    /// that failed is reported as one in the lane would be).
    func collectAhead(sending batch: OutboxBatch) -> OutboxBatch? {
        let round = ahead.collect()
        if let error = round.settleError { report(.failed(reason: error)) }
        // Only a stored batch of its own: a batch held in memory is the outbox's to offer.
        guard let next = round.next, next.id != batch.id, !next.inMemory else { return nil }
        return next
    }

    /// Records what the platform said about a batch: an alarm's by the outbox's writer (the
    /// alarm lane never waits for the disk), a bulk batch's here.
    func settle(_ batch: OutboxBatch, outcomes: [EventID: DeliveryOutcome]) throws {
        if batch.lane == .alarm {
            try outbox.delivered(batch, outcomes: outcomes, at: now())
        } else {
            try outbox.with { try $0.settle(batch, outcomes: outcomes) }
        }
    }

    /// Until new work wakes the lane (`wake()`, an event stored, held in memory) or `limit`.
    func waitForWork(_ lane: Lane, upTo limit: Duration) {
        _ = work[lane]!.wait(timeout: .now() + .milliseconds(Int(limit.nanoseconds / 1_000_000)))
    }

    /// The alarm lane finished an attempt; `progress` when it settled its event.
    func alarmDone(progress: Bool) {
        if progress { alarmProgress.add(1, ordering: .releasing) }
        alarmAttempts.add(1, ordering: .releasing)
        alarmSettled.signal()
    }

    /// Half the alarm lane's attempt (boot clock, ns).
    var halfAttempt: UInt64 { UInt64(Self.alarmTLS(settings.tls).totalTimeout.nanoseconds / 2) }

    /// The seconds an alarm's request sent at `sentAt` (boot clock, ns) went unanswered, if the
    /// platform left it so for at least half an attempt and meanwhile answered another request
    /// of the hub's sent after that half (not one sent before, which a platform slowing down or
    /// going away as the alarm went still answers): a platform that hangs on this alarm.
    func unansweredWhileThePlatformWorked(sentAt: UInt64) -> Int? {
        let waited = boottime() &- sentAt
        guard waited >= halfAttempt, answeredSentAt.load(ordering: .acquiring) >= sentAt + halfAttempt else { return nil }
        return Int(waited / 1_000_000_000)
    }

    /// The alarm attempt just begun still unanswered half an attempt on: the heartbeat goes now
    /// (`probe`), so that whether the platform answers it tells, by the attempt's end, a
    /// platform that hangs on this alarm from one that is slow or away. Without it that waits
    /// for a heartbeat that happens to fall in the attempt (a minute apart), or for batches,
    /// which alarms first holds back.
    ///
    /// Half the attempt is reckoned from the alarm's `sentAt` on the boot clock, which is what the
    /// answer is measured against (`unansweredWhileThePlatformWorked`): a probe sent a moment
    /// before it would count for nothing, and no other would come in that attempt.
    func probeAtHalf(sentAt: UInt64, attempt: Int) {
        let wait = Int64(bitPattern: (sentAt &+ halfAttempt) &- boottime())
        alarmProbes.asyncAfter(deadline: .now() + .nanoseconds(Int(max(wait, 0)))) { [self] in
            guard alarmBegun.load(ordering: .acquiring) == attempt, alarmAttempts.load(ordering: .acquiring) == attempt - 1 else { return }
            // The dispatch clock is not the boot clock: early by their difference, wait the rest.
            if boottime() < sentAt &+ halfAttempt { return probeAtHalf(sentAt: sentAt, attempt: attempt) }
            probe()
        }
    }

    /// Beside the alarm lane's try of `alarm`, sent at `sentAt` (boot clock, ns): gives the try up
    /// (`giveUpTry`, then its connections cut, the hedge's second request's too) for another alarm
    /// waiting, once the try holds that one back for nothing. For an alarm the platform hangs on
    /// (tried alone), at once, looking each time events are stored. For any other, once the
    /// platform has left it unanswered half an attempt while it answered a request of the hub's
    /// sent since (the heartbeat `probeAtHalf` sends): the rest of the attempt would change
    /// nothing but the wait of the alarms behind it (5 s more), since the lane passes it over
    /// at the attempt's end anyway (`AlarmTurns.unanswered`).
    func watchTry(of alarm: StoredEvent, sentAt: UInt64, turns: AlarmTurns, cutting cutter: ConnectionCutter,
                  loop: BackgroundLoop) -> AlarmTryWatch {
        giveUpTry.store(false, ordering: .releasing)
        let watch = AlarmTryWatch(lanes: self)
        let hangs = turns.hangs(alarm)
        // The order once this alarm is passed over: who would go instead.
        let passing = {
            var t = turns
            t.unanswered(alarm, "", at: 0)
            return t
        }()
        let half = sentAt &+ halfAttempt
        alarmWatch.async { [self] in
            defer {
                watchingAnswers.store(false, ordering: .releasing)
                watch.ended.signal()
            }
            /// How long until half the attempt (ns; zero or less once it is past).
            func toHalf() -> Int64 { Int64(bitPattern: half &- boottime()) }
            var unsure = false
            while watch.trying.load(ordering: .acquiring), !loop.isStopped {
                let wait = toHalf()
                waitForWork(.alarm, upTo: !hangs && wait > 0 ? .nanoseconds(wait) : unsure ? Self.lookAgain : Self.alarmAttempt)
                guard watch.trying.load(ordering: .acquiring) else { return }
                if !hangs {
                    guard toHalf() <= 0 else { continue }
                    // Set before looking: an answer from now on wakes the watch.
                    watchingAnswers.store(true, ordering: .releasing)
                    guard unansweredWhileThePlatformWorked(sentAt: sentAt) != nil else { continue }
                }
                let instead = alarmInstead(of: alarm, pick: passing.pick)
                unsure = instead == .unknown
                if case .another = instead {
                    giveUpTry.store(true, ordering: .releasing)
                    cutter.cut()
                    hedge.giveUp()
                    return
                }
            }
        }
        return watch
    }

    /// Waits up to `delay`, or until an alarm other than `alarm` is the one to send (`pick`),
    /// looking each time events are stored or handed over.
    func awaitAnotherAlarm(than alarm: StoredEvent, upTo delay: Duration, loop: BackgroundLoop, pick: ([StoredEvent]) -> StoredEvent?) {
        let clock = ContinuousClock()
        let end = clock.now + delay
        var unsure = false
        while !loop.isStopped, clock.now < end {
            waitForWork(.alarm, upTo: unsure ? min(Self.lookAgain, end - clock.now) : end - clock.now)
            let instead = alarmInstead(of: alarm, pick: pick)
            if case .another = instead { return }
            unsure = instead == .unknown
        }
    }

    /// Whether another alarm than the one being tried or waited for is the one to send.
    enum AlarmInstead: Equatable {
        case another(StoredEvent)
        case none
        /// The read had not answered (a slow card): look again after `lookAgain`, not only
        /// at the next wake, which may never come.
        case unknown
    }

    /// How soon the alarm lane, or a look beside it, looks again when its read has not answered
    /// (`AlarmInstead.unknown`): by then a read that holds the outbox has held it long enough
    /// for the alarms to go from memory (`LockedOutbox.expressAfter`).
    static let lookAgain = Duration.milliseconds(100)

    /// Whether `pick` takes another alarm than `alarm`, found as the lane itself finds its next
    /// (`alarmToSend`). A read that fails (the card refuses reads) says none: the next wake looks
    /// again, as the lane does after `afterUnreadable`.
    func alarmInstead(of alarm: StoredEvent, pick: ([StoredEvent]) -> StoredEvent?) -> AlarmInstead {
        let read: StoredEvent??
        do { read = try alarmToSend(pick: pick) } catch { return .none }
        guard let read else { return .unknown }
        guard let next = read, next.eventID != alarm.eventID else { return .none }
        return .another(next)
    }

    /// The alarm the lane would send next (`pick`): from memory once the outbox has been busy
    /// `LockedOutbox.expressAfter` (an alarm waiting for a write that hangs is in no read), else
    /// as read; nil when the read has not answered in 200 ms, .some(nil) when none waits.
    func alarmToSend(pick: ([StoredEvent]) -> StoredEvent?) throws -> StoredEvent?? {
        if let fromMemory = outbox.alarmToExpress(pick: pick) { return .some(fromMemory) }
        return try outbox.nextAlarm(within: .milliseconds(200), pick: pick)
    }

    /// Alarms first: while alarm-lane events wait, the bulk lane holds back (true: look again).
    /// It goes on only when the alarm lane has made no progress for `alarmsFirstGrace` and,
    /// asked to try once more right now, still did not get through: a broken alarm endpoint
    /// must not stop everything else, but no batch may slip ahead of the alarms just because
    /// its backoff happened to end first when the platform came back.
    func alarmsFirst(since: inout WallTime?, loop: BackgroundLoop) -> Bool {
        // Those the platform keeps failing while it works hold nothing back: not alarms behind
        // them (`AlarmTurns`), nor the batches.
        guard !alarmsPassedOverOnly.load(ordering: .acquiring), (try? outbox.with({ try $0.hasQueued(.alarm) })) ?? false else {
            since = nil
            return false
        }
        let progress = alarmProgress.load(ordering: .acquiring)
        let start = since ?? now()
        since = start
        if now() - start < settings.alarmsFirstGrace {
            _ = alarmSettled.wait(timeout: .now() + .milliseconds(200))
            if alarmProgress.load(ordering: .acquiring) != progress { since = now() }
            return true
        }
        // An attempt begun after this ask must have failed: one already in flight (begun while
        // the platform was away, say) failing just as it comes back is no reason to go ahead.
        // Any alarm getting through ends the wait: the one in flight may have been the last, and
        // then no attempt follows it.
        let asked = alarmBegun.load(ordering: .acquiring)
        platformAnswered.add(1, ordering: .releasing)  // cuts the alarm lane's backoff short (not a Retry-After); no success
        let clock = ContinuousClock()
        let deadline = clock.now + Self.alarmAttempt * 2 + .seconds(2)  // the one in flight, then ours
        while !loop.isStopped, alarmAttempts.load(ordering: .acquiring) <= asked,
              alarmProgress.load(ordering: .acquiring) == progress, clock.now < deadline {
            _ = alarmSettled.wait(timeout: .now() + .milliseconds(100))
        }
        if alarmProgress.load(ordering: .acquiring) != progress {
            since = now()
            return true
        }
        return false
    }

    /// Sleeps out a backoff; true when it was cut short because another exchange succeeded
    /// (never one the platform asked for with Retry-After).
    func backOff(_ loop: BackgroundLoop, _ delay: Duration, until answered: Int, retryAfter: Duration?) -> Bool {
        let clock = ContinuousClock()
        let end = clock.now + delay
        while !loop.isStopped, clock.now < end {
            if retryAfter == nil, platformAnswered.load(ordering: .acquiring) != answered { return true }
            loop.sleep(min(.milliseconds(50), end - clock.now))
        }
        return false
    }

    /// A bulk batch's body: the EventBatch envelope (an alarm goes alone, `OutboxBatch.alarm`).
    func bulkBody() -> (String, [StoredEvent]) -> [UInt8] {
        let hubID = settings.hubID, bootID = bootID, sentAt = RFC3339.format(now(), utcOffsetSeconds: 0, fractionDigits: 3), boottime = boottime()
        return { id, events in
            BatchProtocol.body(hubID: hubID, batchID: id, sentAt: sentAt, bootID: bootID, boottimeNanoseconds: boottime, events: events.map(\.payload))
        }
    }

    /// `recentAnswers`: how long the platform took to answer the last few alarms, for when to
    /// send an alarm again (`AlarmHedge.delay`).
    func send(_ batch: OutboxBatch, lane: Lane, base: String, client: HTTPClient, hedged: Bool = true, recentAnswers: inout [Duration]) throws -> HTTPResponse {
        let prefix = base + "/v1/hubs/" + settings.hubID
        if lane == .alarm {
            let request = AlarmHedge.Request(url: prefix + "/alarms", headers: ["Content-Type: application/json"], body: batch.body)
            // An alarm the platform hangs on: sent again on a new connection, it would hang there too.
            guard hedged else { return try client.send("POST", request.url, headers: request.headers, body: request.body) }
            let sent = try hedge.send(request, on: client, after: AlarmHedge.delay(recentAnswers: recentAnswers))
            recentAnswers = Array((recentAnswers + [sent.response.answeredIn]).suffix(8))
            if let after = sent.sentAgainAfter { report(.sentAgain(after: after, status: sent.response.status)) }
            return sent.response
        }
        return try client.send("POST", prefix + "/events:batch",
                               headers: ["Content-Type: application/json", "Idempotency-Key: \"\(batch.id)\""], body: batch.body)
    }

    /// What a 2xx means per event; nil when the answer cannot be read (retry the same batch).
    func outcomes(of batch: OutboxBatch, lane: Lane, response: HTTPResponse) -> [EventID: DeliveryOutcome]? {
        if lane == .alarm {
            // 202 with the alarm's record: durably received. Any other 2xx body (a captive portal's
            // page, a proxy's) did not come from the platform: the alarm is not delivered.
            guard AlarmHandling.parse(response.body) != nil else { return nil }
            // An active alarm or test is then followed until an operator takes it.
            let event = batch.events[0]
            if let location = response.header("Location"), location.hasPrefix("/"), Self.awaitsOperator(event) {
                return [event.eventID: .deliveredFollowing(location: location)]
            }
            return [event.eventID: .delivered]
        }
        guard case .outcomes(let answered) = BatchProtocol.answer(response.body) else { return nil }
        return answered.mapValues { outcome in
            switch outcome {
            case .accepted, .duplicate: return .delivered
            case .rejected(let reason): return .rejected(reason: reason)
            }
        }
    }

    /// Alarms and tests in state `active` wait for an operator; technical events and endings do
    /// not (and so an escalation can never escalate itself).
    static func awaitsOperator(_ event: StoredEvent) -> Bool {
        guard event.eventClass == .alarm || event.eventClass == .test else { return false }
        let json = try? JSONValue.parse(bytes: event.payload)
        return json?["state"]?.stringValue == EventState.active.rawValue
    }

    /// What a request the platform refused whole (400/422) comes to: every event of it a dead
    /// letter, unless some of them, not all, have stored bytes that are not JSON any more (the
    /// SD card damaged them; a batch embeds each event's bytes as stored, so one such event
    /// spoils the whole body). Then only those are dead letters, and the others, unanswered, go
    /// again in a new batch.
    static func rejection(of batch: OutboxBatch, _ reason: String) -> (outcomes: [EventID: DeliveryOutcome], reason: String) {
        let damaged = batch.events.count > 1 ? batch.events.filter(isDamaged) : []
        guard !damaged.isEmpty, damaged.count < batch.events.count else {
            return (Dictionary(uniqueKeysWithValues: batch.events.map { ($0.eventID, .rejected(reason: reason)) }), reason)
        }
        let why = "\(reason); the event's stored bytes are not JSON (damaged on the SD card), which spoiled its batch: "
            + "the batch's \(batch.events.count - damaged.count) other events are sent again"
        return (Dictionary(uniqueKeysWithValues: damaged.map { ($0.eventID, .rejected(reason: why)) }), why)
    }

    /// The alarms among `events` whose stored bytes are not JSON any more (the card damaged them):
    /// the platform cannot take them as they are, and a dead letter alone would leave a fall
    /// unseen by anyone, so the hub makes each again from what could be read.
    static func damagedAlarms(_ events: [StoredEvent]) -> [StoredEvent] {
        events.filter { $0.eventClass == .alarm && isDamaged($0) }
    }

    /// The event's stored bytes are not a JSON object any more: the SD card damaged them.
    static func isDamaged(_ event: StoredEvent) -> Bool {
        (try? JSONValue.parse(bytes: event.payload))?.objectFields == nil
    }

    /// A 2xx that is not the platform's answer: say what came instead.
    static func unreadable(_ response: HTTPResponse) -> String {
        let type = response.header("Content-Type") ?? "no content type"
        return "HTTP \(response.status) with an answer that is not the platform's (\(type), \(response.body.count) bytes): a captive portal or proxy in the way, or a wrong url"
    }

    func problemText(_ response: HTTPResponse) -> String {
        let json = try? JSONValue.parse(bytes: response.body)
        return json?["detail"]?.stringValue ?? json?["title"]?.stringValue ?? "no reason given"
    }
}

/// A watch beside the alarm lane's try of an alarm (`DeliveryLanes.watchTry`).
final class AlarmTryWatch: Sendable {
    let trying = Atomic<Bool>(true)
    let ended = DispatchSemaphore(value: 0)
    let lanes: DeliveryLanes
    init(lanes: DeliveryLanes) { self.lanes = lanes }

    let givenUp = Atomic<Bool>(false)

    /// The try has ended: ends the watch (once; later calls only answer) and says whether the
    /// try was given up for another alarm. The lane's next request is not.
    func end() -> Bool {
        if trying.exchange(false, ordering: .acquiringAndReleasing) {
            lanes.work[.alarm]!.signal()
            ended.wait()
            givenUp.store(lanes.giveUpTry.exchange(false, ordering: .acquiringAndReleasing), ordering: .releasing)
        }
        return givenUp.load(ordering: .acquiring)
    }
}
