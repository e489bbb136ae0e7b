import Dispatch
import Outbox
import Synchronization
import Uplink
import VaktpostCore
import VaktpostPosix

/// What the platform may ask of the running hub (docs/uplink.md, Configuration and commands).
/// The daemon implements it; every method may be called from the uplink's threads.
public protocol HubControl: Sendable {
    /// Stores one technical event of the hub (the link's own: uplink.lost, alarm.unacknowledged,
    /// ...) the way the hub stores every event; its id, or nil when the outbox refused it.
    @discardableResult
    func raise(_ type: EventType, _ state: EventState, correlation: EventID?, data: [(String, JSONValue)]) -> EventID?
    /// Sensors, receivers, version, uptime, disk: the heartbeat and `diagnostics` (outbox and
    /// clock fields are filled in by the link).
    func health() -> HealthSnapshot
    /// Stores a `test.alarm` event (it goes through the alarm lane like any alarm); its id.
    func raiseTestAlarm() -> EventID?
    /// Stores an alarm again, made from what the card left readable of a stored one whose bytes
    /// it damaged (type, sensor, time: `DeliveryLanes.damagedAlarms`); its id, or nil.
    func remakeDamagedAlarm(_ damaged: StoredEvent) -> EventID?
    /// Validates a configuration exactly as `vaktpost config check` does and, when valid, puts it
    /// in force atomically. Nil when applied; otherwise why it was refused (the old one stays).
    func applyConfig(_ text: String, version: String) -> String?
    /// Forgets a BLE sensor's BTHome counters, so that its next packet is taken (a battery change
    /// started them again): what was forgotten, or `error`. `by` says who asked, for the journal.
    func resetCounter(_ sensor: String, by: String) -> JSONValue
}

/// Everything between the hub and its platform beyond the outbox: the two delivery lanes, the
/// following of received alarms until an operator acknowledges them, heartbeats, commands, link
/// supervision and the clock correction, each turned into the technical events of the catalog.
///
/// Threads: the lanes have theirs; the follower, the heartbeat and the command poll each have
/// their own loop and their own libcurl handle, so none waits behind another.
public final class PlatformLink: Sendable {
    public struct Settings: Sendable {
        public var uplink: UplinkSettings
        public var heartbeat: Duration
        /// An alarm not acknowledged this long after the platform received it is escalated.
        public var acknowledgeWithin: Duration
        /// How often received alarms' status is asked for (SCAIP resends every 5-20 s).
        public var followEvery: Duration
        /// The long poll for commands (the platform may hold it this long).
        public var commandWait: Int
        /// The version of the config in force at start (its ETag when it came from the platform).
        public var configVersion: String?
        /// How long the wall clock may stay unsynchronised after start before `clock.unsynced`.
        public var unsyncedGrace: Duration

        public init(uplink: UplinkSettings, heartbeat: Duration = .seconds(60), acknowledgeWithin: Duration = .seconds(60),
                    followEvery: Duration = .seconds(5), commandWait: Int = 25, configVersion: String? = nil, unsyncedGrace: Duration = .seconds(600)) {
            self.uplink = uplink
            self.heartbeat = heartbeat
            self.acknowledgeWithin = acknowledgeWithin
            self.followEvery = followEvery
            self.commandWait = commandWait
            self.configVersion = configVersion
            self.unsyncedGrace = unsyncedGrace
        }
    }

    /// What happened, for the log and for whoever waits on it (`vaktpost test-alarm`).
    public enum Notice: Equatable, Sendable {
        case acknowledged(EventID, status: AlarmHandling, after: Duration)
        case escalated(EventID, waited: Duration)
        case heartbeat(status: Int, interval: Duration)
        case linkLost(since: WallTime)
        case linkRestored(downFor: Duration)
        case command(id: String, outcome: PlatformCommand.Outcome)
        case configApplied(version: String)
        case configRefused(version: String, reason: String)
        case clockCorrected(events: Int)
        /// A request failed and will be retried: said once per cause until something gets through.
        case attemptFailed(reason: String)
        /// An alarm went again on a new connection, its first having no answer (`AlarmHedge`).
        case alarmSentAgain(after: Duration, status: Int)
        /// The platform works, yet keeps failing an alarm; the ones behind it go first.
        case alarmUndelivered(EventID, type: String, lastError: String)
        /// That alarm left the queue after all: `delivered`, or refused for good.
        case alarmUndeliveredEnded(EventID, type: String, delivered: Bool)
    }

    let settings: Settings
    let outbox: LockedOutbox
    let clock: HubClock
    let hub: any HubControl
    let notice: @Sendable (Notice) -> Void
    public let lanes: DeliveryLanes

    struct State {
        var supervisor: LinkSupervisor
        var heartbeat: Duration
        /// The config fetched last (If-None-Match); `runningConfig` the one in use, which
        /// differs until the agent has restarted onto it.
        var configVersion: String?
        var runningConfig: String?
        /// A pushed config that was refused, so the next heartbeat does not fetch it again.
        var refusedConfig: String?
        var unauthorized: EventID?
        var lost: EventID?
        /// Why the last attempt failed; named in `uplink.lost`.
        var lastFailure: String?
        /// The failures already logged since the last successful exchange (the lanes and the
        /// heartbeat word the same outage differently; at most five causes are logged per outage).
        var loggedFailures: Set<String> = []
        var clockSynced: Bool
        /// Where the pending correction of queued stamps stands; nil when none is pending. Set
        /// once the clock synchronised, or at start when an agent before this one of the same
        /// boot noted unsynchronised stamps; cleared when a pass ends (a full disk fails a step,
        /// and the next tick goes on from here).
        var correction: RewriteCursor?
        /// Events corrected so far by the pending pass, said once when it ends.
        var corrected = 0
        var unsyncedSince: WallTime?
        var unsyncedEvent: EventID?
        var lastContact: WallTime?
        /// The `alarm.undelivered` raised for each alarm, by the alarm's id, to clear once it
        /// leaves the queue (kept in the outbox: `undeliveredNote`). Bounded as `AlarmTurns`
        /// bounds what it reports.
        var undelivered: [EventID: UndeliveredAlarm] = [:]
        /// Those an agent before this one raised whose alarm had left the queue by this start
        /// (it was killed between the two): cleared at `start`.
        var undeliveredLeft: [EventID] = []
    }

    /// An `alarm.undelivered` raised and not yet cleared.
    struct UndeliveredAlarm: Equatable {
        var raised: EventID
        var type: String
        var sensor: String?
    }
    let state: Mutex<State>
    let configReload = Mutex(())
    let loops = (follow: BackgroundLoop(label: "vaktpost.uplink.follow"), heartbeat: BackgroundLoop(label: "vaktpost.uplink.heartbeat"),
                 commands: BackgroundLoop(label: "vaktpost.uplink.commands"), supervise: BackgroundLoop(label: "vaktpost.uplink.supervise"))
    let heartbeatNow: DispatchSemaphore
    let commandsNow = DispatchSemaphore(value: 0)
    let startedAt: WallTime

    public init(settings: Settings, outbox: LockedOutbox, clock: HubClock, hub: any HubControl, notice: @escaping @Sendable (Notice) -> Void = { _ in }) {
        self.settings = settings
        self.outbox = outbox
        self.clock = clock
        self.hub = hub
        self.notice = notice
        startedAt = clock.elapsed()
        let synced = clock.synced()
        if !synced { Self.noteUnsyncedStamps(outbox, boot: clock.bootID) }
        // A restart after the clock synchronised: the agent before may have queued stamps it had
        // no chance to correct.
        let stamped = synced && (try? outbox.with { try $0.note(Self.unsyncedNote) }) == clock.bootID
        let configVersion = (try? outbox.with { try $0.note("config_version") }) ?? settings.configVersion
        // The alarm.undelivered an agent before this one raised and did not clear: cleared when
        // their alarms leave the queue, or now for those that already have.
        let undelivered = Self.undelivered(from: (try? outbox.with { try $0.note(Self.undeliveredNote) }) ?? nil)
        let queued = undelivered.isEmpty ? nil : try? outbox.with { o in Set(try o.queuedAlarms(skipping: [], limit: 100_000).map(\.eventID)) }
        let left = queued.map { q in undelivered.keys.filter { !q.contains($0) }.sorted { $0.description < $1.description } } ?? []
        state = Mutex(State(supervisor: LinkSupervisor(heartbeat: settings.heartbeat, startedAt: clock.elapsed()), heartbeat: settings.heartbeat,
                            configVersion: configVersion, runningConfig: configVersion,
                            clockSynced: synced, correction: stamped ? .start : nil, undelivered: undelivered, undeliveredLeft: left))
        // The lanes report to the link; the link's events wake the lanes. Built in two steps
        // because each needs the other.
        let relay = ReportRelay()
        let heartbeatNow = DispatchSemaphore(value: 0)
        self.heartbeatNow = heartbeatNow
        // An alarm unanswered half its attempt: the heartbeat goes now, to see whether the platform answers.
        let lanes = DeliveryLanes(settings: settings.uplink, outbox: outbox, bootID: clock.bootID, now: clock.elapsed, boottime: clock.boottime,
                                  probe: { heartbeatNow.signal() }, reportedBefore: Set(undelivered.keys).subtracting(left),
                                  report: { relay.forward($0) })
        self.lanes = lanes
        relay.target.withLock { $0 = { [weak self] report in self?.handle(report) } }
    }

    public func start() {
        // Stamps an earlier agent of this boot left uncorrected are put right before any is
        // sent: the alarm lane's here (a few events), the rest by the first tick, the bulk lane
        // held until then (correctClock holds it and, for the alarm lane only, leaves it held).
        if state.withLock({ $0.correction != nil }) { correctClock(alarmLaneOnly: true) }
        clearUndeliveredLeft()
        lanes.start()
        loops.follow.start { [self] in followLoop() }
        loops.heartbeat.start { [self] in heartbeatLoop() }
        loops.commands.start { [self] in commandLoop() }
        loops.supervise.start { [self] in superviseLoop() }
    }

    /// Ends every loop; a request in flight is abandoned within a fraction of a second.
    public func stop() {
        let all = [loops.follow, loops.heartbeat, loops.commands, loops.supervise]
        for loop in all { loop.requestStop() }
        lanes.requestStop()
        heartbeatNow.signal()
        commandsNow.signal()
        for loop in all { loop.stop() }
        lanes.stop()
    }

    /// Events were stored: deliver them now.
    public func wake() { lanes.wake() }

    public var heartbeatInterval: Duration { state.withLock { $0.heartbeat } }
    public var configVersion: String? { state.withLock { $0.configVersion } }
    /// The last successful exchange with the platform; nil before the first.
    public var lastContact: WallTime? { state.withLock { $0.lastContact } }
    public var linkUp: Bool { state.withLock { $0.supervisor.lostSince == nil } }

    // MARK: Reports → technical events

    /// The link's events go through the hub, which commits them like every other event.
    @discardableResult
    func raise(_ type: EventType, _ state: EventState = .active, correlation: EventID? = nil, data: [(String, JSONValue)] = []) -> EventID? {
        hub.raise(type, state, correlation: correlation, data: data)
    }

    func handle(_ report: DeliveryLanes.Report) {
        switch report {
        case .exchanged(let at): exchanged(at: at)
        case .rejected(let count, let reason, let damagedAlarms):
            raise(.uplinkRejected, data: [("count", .int(Int64(count))), ("reason", .string(reason))]
                  + (damagedAlarms.isEmpty ? [] : [("remade", .array(damagedAlarms.map { .string($0.eventID.description) }))]))
            for alarm in damagedAlarms { _ = hub.remakeDamagedAlarm(alarm) }
        case .unauthorized(let status):
            let first = state.withLock { s -> Bool in s.unauthorized == nil }
            guard first else { return }
            let id = raise(.uplinkUnauthorized, data: [("status", .int(Int64(status))),
                                                       ("reason", .string("the platform answered \(status) to the hub's certificate"))])
            state.withLock { $0.unauthorized = id }
        case .failed(let reason):
            let fresh = state.withLock { s -> Bool in
                s.lastFailure = reason
                guard s.loggedFailures.count < 5 else { return false }
                return s.loggedFailures.insert(reason).inserted
            }
            if fresh { notice(.attemptFailed(reason: reason)) }
        case .sentAgain(let after, let status):
            notice(.alarmSentAgain(after: after, status: status))
        case .alarmUndelivered(let alarm, let lastError):
            let id = raise(.alarmUndelivered, data: [("alarmEventId", .string(alarm.eventID.description)), ("alarmType", .string(alarm.type)),
                                                     ("lastError", .string(lastError))] + (alarm.sensor.map { [("sensor", .string($0))] } ?? []))
            if let id {
                keepUndelivered { u in
                    if u.count >= 256 { u.removeAll() }
                    u[alarm.eventID] = UndeliveredAlarm(raised: id, type: alarm.type, sensor: alarm.sensor)
                }
            }
            notice(.alarmUndelivered(alarm.eventID, type: alarm.type, lastError: lastError))
        case .alarmUndeliveredEnded(let alarm, let delivered):
            clearUndelivered(alarm.eventID, delivered: delivered)
        }
    }

    // MARK: alarm.undelivered

    /// The outbox note of the `alarm.undelivered` raised and not yet cleared: one line each,
    /// the alarm's event id, the raised event's id, the alarm's type and sensor.
    static let undeliveredNote = "alarms_undelivered"

    static func undelivered(from note: String?) -> [EventID: UndeliveredAlarm] {
        var out: [EventID: UndeliveredAlarm] = [:]
        for line in (note ?? "").split(separator: "\n") {
            let f = line.split(separator: " ", maxSplits: 3).map(String.init)
            guard f.count >= 3, let alarm = EventID(f[0]), let raised = EventID(f[1]) else { continue }
            out[alarm] = UndeliveredAlarm(raised: raised, type: f[2], sensor: f.count > 3 ? f[3] : nil)
        }
        return out
    }

    static func note(of undelivered: [EventID: UndeliveredAlarm]) -> String? {
        guard !undelivered.isEmpty else { return nil }
        return undelivered.sorted { $0.key.description < $1.key.description }
            .map { ([$0.key.description, $0.value.raised.description, $0.value.type] + ($0.value.sensor.map { [$0] } ?? [])).joined(separator: " ") }
            .joined(separator: "\n")
    }

    /// Changes the raised and not yet cleared, and keeps them in the outbox (by its writer: the
    /// alarm lane, which reports these, never waits for the disk). Called from the alarm lane's
    /// thread only (and `start`, before it runs), so the notes are written in the order made.
    func keepUndelivered(_ change: (inout [EventID: UndeliveredAlarm]) -> Void) {
        let text = state.withLock { s in
            change(&s.undelivered)
            return Self.note(of: s.undelivered)
        }
        outbox.later { try? $0.setNote(Self.undeliveredNote, text) }
    }

    /// The restore of the `alarm.undelivered` raised for `alarm`, if one was: its alarm left
    /// the queue, `delivered` or refused for good. The platform's operators can close it.
    func clearUndelivered(_ alarm: EventID, delivered: Bool) {
        guard let raised = state.withLock({ $0.undelivered[alarm] }) else { return }
        raise(.alarmUndelivered, .cleared, correlation: raised.raised, data: [("alarmEventId", .string(alarm.description)), ("alarmType", .string(raised.type)),
                                                                                  ("outcome", .string(delivered ? "delivered" : "rejected"))]
              + (raised.sensor.map { [("sensor", .string($0))] } ?? []))
        keepUndelivered { $0[alarm] = nil }
        notice(.alarmUndeliveredEnded(alarm, type: raised.type, delivered: delivered))
    }

    /// Clears those whose alarm left the queue before this start (the agent before was killed
    /// between settling the alarm and clearing its report): rejected if a dead letter.
    func clearUndeliveredLeft() {
        let left = state.withLock { s in
            defer { s.undeliveredLeft = [] }
            return s.undeliveredLeft
        }
        guard !left.isEmpty else { return }
        let dead = Set(((try? outbox.with { try $0.deadLetters() }) ?? []).map(\.eventID))
        for alarm in left { clearUndelivered(alarm, delivered: !dead.contains(alarm)) }
    }

    /// A successful exchange: the link is up, a certificate refusal is over.
    func exchanged(at time: WallTime) {
        let (change, unauthorized, lost) = state.withLock { s -> (LinkSupervisor.Change?, EventID?, EventID?) in
            s.lastContact = time
            s.loggedFailures = []
            let change = s.supervisor.succeeded(at: time)
            defer { s.unauthorized = nil }
            let lost = s.lost
            if change != nil { s.lost = nil }
            return (change, s.unauthorized, lost)
        }
        if let unauthorized { raise(.uplinkUnauthorized, .cleared, correlation: unauthorized) }
        if case .restored(let downFor)? = change {
            raise(.uplinkRestored, correlation: lost, data: [("downForS", .int(downFor.nanoseconds / 1_000_000_000))])
            notice(.linkRestored(downFor: downFor))
        }
    }

    /// The link supervisor's and the clock's periodic checks.
    func tick() {
        let now = clock.elapsed()
        let (change, lastFailure) = state.withLock { ($0.supervisor.tick(at: now), $0.lastFailure) }
        if case .lost(let since)? = change {
            let id = raise(.uplinkLost, data: [("since", .string(RFC3339.format(since, utcOffsetSeconds: clock.zone.utcOffset(at: since), fractionDigits: 3))),
                                               ("missedHeartbeats", .int(3)), ("lastError", .string(lastFailure ?? "no answer"))])
            state.withLock { $0.lost = id }
            notice(.linkLost(since: since))
        }
        checkClock(now: now)
    }

    // MARK: Time

    /// When the clock becomes synchronised, re-stamp the events of this boot made before; when it
    /// stays unsynchronised past the grace, raise `clock.unsynced`.
    func checkClock(now: WallTime) {
        let synced = clock.synced()
        let (correct, lostSync, raiseUnsynced, clearUnsynced) = state.withLock { s -> (Bool, Bool, Bool, EventID?) in
            defer { s.clockSynced = synced }
            if synced {
                s.unsyncedSince = nil
                let clear = s.unsyncedEvent
                s.unsyncedEvent = nil
                if !s.clockSynced {
                    s.correction = .start
                    s.corrected = 0
                }
                return (s.correction != nil, false, false, clear)
            }
            let since = s.unsyncedSince ?? (s.clockSynced ? now : startedAt)
            s.unsyncedSince = since
            return (false, s.clockSynced, s.unsyncedEvent == nil && now - since >= settings.unsyncedGrace, nil)
        }
        if raiseUnsynced {
            let id = raise(.clockUnsynced, data: [("reason", .string("the wall clock has not been synchronised (NTP) for \(DurationText.format(settings.unsyncedGrace))"))])
            state.withLock { $0.unsyncedEvent = id }
        }
        if let clearUnsynced { raise(.clockUnsynced, .cleared, correlation: clearUnsynced) }
        if lostSync { Self.noteUnsyncedStamps(outbox, boot: clock.bootID) }
        if correct {
            correctClock()
        } else {
            lanes.holdBulk(false)  // start() held it for a correction; the clock lost sync since
        }
    }

    /// The outbox note naming the boot whose queued events may carry unsynchronised stamps.
    static let unsyncedNote = "unsynced_boot"

    /// Kept with the events, so that an agent started after the clock synchronised knows to
    /// correct what an earlier one of this boot queued; cleared by a successful correction.
    /// Written by the outbox's writer: the link's checks never wait for the disk.
    static func noteUnsyncedStamps(_ outbox: LockedOutbox, boot: String) {
        outbox.later { try? $0.setNote(unsyncedNote, boot) }
    }

    /// Events re-stamped per hold of the outbox: about 10 ms of work here, more on an SD card.
    static let correctionStep = 256

    /// Re-stamps queued events of this boot that were made with an unsynchronised clock, a step
    /// at a time (`Outbox.rewriteQueued`), alarms first. The bulk lane is held meanwhile, so no
    /// state event goes out with the stamp about to be corrected; the alarm lane never is. On
    /// failure (a full disk) the hold ends, since delivering is what frees the disk, and the next
    /// tick goes on where this one stopped; so it does when the outbox stays busy with a write
    /// that hangs: the link's checks (`uplink.lost`) never wait for the disk. Only `start`'s
    /// pass (`alarmLaneOnly`: the alarm lane is not held, so its events are corrected before it
    /// starts) waits for the outbox.
    func correctClock(alarmLaneOnly: Bool = false) {
        let offset = clock.wall().nanosecondsSinceEpoch &- Int64(clamping: clock.boottime())
        let bootID = clock.bootID, zone = clock.zone
        lanes.holdBulk(true)
        defer { if !alarmLaneOnly { lanes.holdBulk(false) } }
        var (cursor, corrected) = state.withLock { ($0.correction, $0.corrected) }
        do {
            while let at = cursor, !(alarmLaneOnly && at.lane != .alarm), !loops.supervise.isStopped {
                let rewrite = { (o: Outbox) in
                    try o.rewriteQueued(containing: TimeCorrection.unsyncedMark, from: at, limit: Self.correctionStep) {
                        TimeCorrection.correct($0.payload, bootID: bootID, offsetNanoseconds: offset, zone: zone)
                    }
                }
                guard let step = alarmLaneOnly ? try outbox.with(rewrite) : try outbox.with(within: .milliseconds(200), rewrite) else { return }
                cursor = step.next
                corrected += step.rewritten
                state.withLock { s in
                    s.correction = cursor
                    s.corrected = corrected
                }
            }
            guard cursor == nil else { return }
            outbox.later { try? $0.setNote(Self.unsyncedNote, nil, synced: true) }
            state.withLock { $0.corrected = 0 }
            if corrected > 0 { notice(.clockCorrected(events: corrected)) }
        } catch {
            // Left pending: the stamps are flagged unsynchronised meanwhile, nothing is lost.
        }
    }

    // MARK: Following received alarms

    /// The link and clock checks, every second, on a thread of their own: on the follow loop's
    /// they waited for its requests, and a platform too slow to answer (each status read timing
    /// out, one per followed alarm) kept `uplink.lost` from being raised for minutes.
    func superviseLoop() {
        while !loops.supervise.isStopped {
            tick()
            loops.supervise.sleep(.seconds(1))
        }
    }

    func followLoop() {
        // A status read is small: as long as an alarm's POST may take, not a batch's.
        var tls = settings.uplink.tls
        tls.totalTimeout = min(tls.totalTimeout, DeliveryLanes.alarmAttempt)
        let client = try? HTTPClient(tls: tls, abandon: { [loops] in loops.follow.isStopped })
        while !loops.follow.isStopped {
            if let client { followOnce(client) }
            loops.follow.sleep(settings.followEvery)
        }
    }

    func followOnce(_ client: HTTPClient) {
        let followed = outbox.followedAlarms()
        // Once a read fails, the platform is not asked about the others this round: with ten
        // alarms followed and the link down, the last one's escalation would otherwise wait for
        // nine timeouts before its own.
        var reachable = true
        for alarm in followed {
            var status = AlarmHandling(rawValue: alarm.status) ?? .received
            // Unreachable, or not asked: the last known status decides, so a dead link still escalates.
            if reachable {
                do {
                    let response = try client.send("GET", settings.uplink.baseURL + alarm.location, headers: ["Accept: application/json"])
                    if response.status == 404 {
                        // The platform lost it: post it again, same id and bytes. Queued again by
                        // the outbox's writer: the follower never waits for the disk, so the
                        // others' escalations are not held up by a write that hangs.
                        outbox.later { [lanes] o in
                            try? o.requeueFollowed(alarm.event.eventID)
                            lanes.wake()
                        }
                        continue
                    }
                    if (200..<300).contains(response.status), let read = AlarmHandling.parse(response.body) {
                        status = read
                        exchanged(at: clock.elapsed())
                    }
                } catch {
                    reachable = false
                }
            }
            let now = clock.elapsed()
            switch AlarmFollowUp.decide(status, acceptedAt: alarm.acceptedAt, now: now, acknowledgeWithin: settings.acknowledgeWithin,
                                        escalated: alarm.escalation != nil) {
            case .done:
                outbox.follow(alarm.event.eventID, .ended)
                if let escalation = alarm.escalation {
                    raise(.alarmUnacknowledged, .cleared, correlation: escalation, data: [("alarmEventId", .string(alarm.event.eventID.description)),
                                                                                               ("status", .string(status.rawValue))])
                }
                notice(.acknowledged(alarm.event.eventID, status: status, after: now - alarm.acceptedAt))
            case .keepFollowing:
                if status.rawValue != alarm.status {
                    outbox.follow(alarm.event.eventID, .status(status.rawValue, alarm.escalation))
                }
            case .escalate(let waited):
                let secondary = sendToSecondary(alarm, client: client)
                let id = raise(.alarmUnacknowledged, data: [
                    ("alarmEventId", .string(alarm.event.eventID.description)), ("alarmType", .string(alarm.event.type)),
                    ("status", .string(status.rawValue)), ("waitedS", .int(waited.nanoseconds / 1_000_000_000)), ("secondary", .string(secondary)),
                ])
                outbox.follow(alarm.event.eventID, .status(status.rawValue, id ?? alarm.event.eventID))
                notice(.escalated(alarm.event.eventID, waited: waited))
            }
        }
    }

    /// Posts the unacknowledged alarm to the secondary platform, once; what happened, for the event.
    func sendToSecondary(_ alarm: FollowedAlarm, client: HTTPClient) -> String {
        guard let secondary = settings.uplink.secondaryURL else { return "none configured" }
        do {
            let response = try client.send("POST", secondary + "/v1/hubs/\(settings.uplink.hubID)/alarms",
                                           headers: ["Content-Type: application/json"], body: alarm.event.payload)
            return (200..<300).contains(response.status) ? "sent (\(response.status))" : "refused (\(response.status))"
        } catch {
            return "unreachable: \(error)"
        }
    }

    // MARK: Heartbeat

    func heartbeatLoop() {
        let client = try? HTTPClient(tls: settings.uplink.tls, abandon: { [loops] in loops.heartbeat.isStopped })
        while !loops.heartbeat.isStopped {
            if let client { sendHeartbeat(client) }
            let interval = heartbeatInterval
            _ = heartbeatNow.wait(timeout: .now() + .nanoseconds(Int(interval.nanoseconds)))
            // Asked for more than once meanwhile (an alarm lane's probes while a heartbeat waited
            // out a dead link): one heartbeat, not a burst of them.
            while heartbeatNow.wait(timeout: .now()) == .success {}
        }
    }

    /// The health snapshot with the link's own knowledge filled in.
    public func health() -> HealthSnapshot {
        var h = hub.health()
        // Not waiting for a write that hangs: the heartbeat goes without the queue's numbers.
        if let queue = (try? outbox.with(within: .milliseconds(250), { try $0.summary() })) ?? nil {
            h.outboxDepth = queue.depth
            h.oldestQueued = queue.oldest
            h.highestSeqQueued = queue.nextSeq > 1 ? queue.nextSeq - 1 : nil
            h.dropped = queue.evictedLog
        }
        h.clockSynced = clock.synced()
        // Support staff see which config runs, and which waits for the restart onto it.
        let (running, latest) = state.withLock { ($0.runningConfig, $0.configVersion) }
        h.configVersion = running ?? h.configVersion
        h.configPending = latest != running ? latest : nil
        return h
    }

    func sendHeartbeat(_ client: HTTPClient) {
        let now = clock.now()
        let body = health().heartbeat(hubID: settings.uplink.hubID, bootID: clock.bootID, boottimeNanoseconds: clock.boottime(), now: now, zone: clock.zone)
        let response: HTTPResponse
        let sentAt = clock.boottime()
        do {
            response = try client.send("POST", settings.uplink.baseURL + "/v1/hubs/\(settings.uplink.hubID)/heartbeat",
                                       headers: ["Content-Type: application/json"], body: body.serializedBytes)
        } catch {
            handle(.failed(reason: "\(error)"))
            return
        }
        guard (200..<300).contains(response.status), let reply = HeartbeatReply.parse(response.body) else {
            if response.status == 401 || response.status == 403 { handle(.unauthorized(status: response.status)) }
            else { handle(.failed(reason: (200..<300).contains(response.status) ? DeliveryLanes.unreadable(response) : "HTTP \(response.status) to the heartbeat")) }
            return
        }
        exchanged(at: clock.elapsed())
        lanes.platformIsBack(sentAt: sentAt)
        let (interval, fetchConfig) = state.withLock { s -> (Duration, Bool) in
            if let next = reply.nextInterval {
                s.heartbeat = next
                s.supervisor.heartbeat = next
            }
            let etag = reply.configETag
            return (s.heartbeat, etag != nil && etag != s.configVersion && etag != s.refusedConfig)
        }
        notice(.heartbeat(status: response.status, interval: interval))
        if fetchConfig { _ = reloadConfig(client) }
        if reply.commandsPending { commandsNow.signal() }
    }

    // MARK: Configuration

    public enum ConfigOutcome: Equatable, Sendable {
        case applied(version: String)
        case unchanged(version: String?)
        case refused(version: String, reason: String)
        case failed(String)
    }

    /// `GET .../config` with the ETag in force; a new one is validated and applied by the hub, or
    /// refused with `config.rejected` while the old one stays. One at a time: the heartbeat's
    /// reply and a `reload-config` command often ask together, and two fetches of the same new
    /// config would both apply it (the daemon restarting twice).
    func reloadConfig(_ client: HTTPClient) -> ConfigOutcome {
        configReload.withLock { _ in fetchAndApplyConfig(client) }
    }

    func fetchAndApplyConfig(_ client: HTTPClient) -> ConfigOutcome {
        let current = configVersion
        let response: HTTPResponse
        do {
            response = try client.send("GET", settings.uplink.baseURL + "/v1/hubs/\(settings.uplink.hubID)/config",
                                       headers: ["Accept: application/toml"] + (current.map { ["If-None-Match: \($0)"] } ?? []))
        } catch {
            return .failed("the platform is unreachable: \(error)")
        }
        if response.status == 304 { return .unchanged(version: current) }
        guard response.status == 200, let etag = response.header("ETag") else {
            return .failed("the platform answered \(response.status) without a config")
        }
        guard let text = String(validating: response.body, as: UTF8.self) else {
            return refuse(etag, "the pushed config is not UTF-8 text")
        }
        if let reason = hub.applyConfig(text, version: etag) { return refuse(etag, reason) }
        state.withLock {
            $0.configVersion = etag
            $0.refusedConfig = nil
        }
        outbox.later { try? $0.setNote("config_version", etag) }  // the poll never waits for the disk
        notice(.configApplied(version: etag))
        return .applied(version: etag)
    }

    func refuse(_ version: String, _ reason: String) -> ConfigOutcome {
        state.withLock { $0.refusedConfig = version }
        raise(.configRejected, data: [("configVersion", .string(version)), ("reason", .string(reason))])
        notice(.configRefused(version: version, reason: reason))
        return .refused(version: version, reason: reason)
    }

    // MARK: Commands

    func commandLoop() {
        var tls = settings.uplink.tls
        tls.totalTimeout = .seconds(Int64(settings.commandWait) + 15)
        guard let client = try? HTTPClient(tls: tls, abandon: { [loops] in loops.commands.isStopped }) else { return }
        var after = Int64((try? outbox.with { try $0.note("command_seq") }).flatMap { $0.flatMap { Int64($0) } } ?? 0)
        var rng = SystemRandomNumberGenerator()
        var failures = 0
        while !loops.commands.isStopped {
            let url = settings.uplink.baseURL + "/v1/hubs/\(settings.uplink.hubID)/commands?after=\(after)&wait=\(settings.commandWait)"
            // 204: nothing new; 200 must carry the command list (a captive portal's page is not an
            // answer, and must not count as contact nor make this loop spin).
            let sentAt = clock.boottime()
            let response = try? client.send("GET", url, headers: ["Accept: application/json"])
            let commands = response.flatMap { $0.status == 204 ? [] : $0.status == 200 ? PlatformCommand.list($0.body) : nil }
            guard let response, let commands else {
                failures += 1
                if let response, (200..<300).contains(response.status) { handle(.failed(reason: DeliveryLanes.unreadable(response))) }
                _ = commandsNow.wait(timeout: .now() + .nanoseconds(Int(Backoff.bulk.delay(attempt: failures, using: &rng).nanoseconds)))
                continue
            }
            _ = response
            failures = 0
            exchanged(at: clock.elapsed())
            lanes.platformIsBack(sentAt: sentAt)
            for command in commands where command.seq > after {
                let (outcome, detail) = run(command, client: client)
                postResult(command, outcome, detail, client: client)
                after = command.seq
                // Noted by the writer: a disk that hangs must not keep support staff's next
                // command (a diagnostics, most likely) from running.
                let done = String(after)
                outbox.later { try? $0.setNote("command_seq", done) }
                notice(.command(id: command.id, outcome: outcome))
            }
        }
    }

    func run(_ command: PlatformCommand, client: HTTPClient) -> (PlatformCommand.Outcome, [(String, JSONValue)]) {
        switch command.kind {
        case .testAlarm:
            guard let id = hub.raiseTestAlarm() else { return (.failed, [("reason", .string("the outbox did not accept the test event"))]) }
            return (.done, [("eventId", .string(id.description))])
        case .diagnostics:
            let h = health().heartbeat(hubID: settings.uplink.hubID, bootID: clock.bootID, boottimeNanoseconds: clock.boottime(), now: clock.now(), zone: clock.zone)
            // Not waiting for a write that hangs: then the answer goes without the count (and the
            // health without the queue's numbers), and says so.
            let deadLetters = (try? outbox.with(within: .milliseconds(250), { try $0.status(sizes: false).deadLetters })) ?? nil
            return (.done, [("health", h), ("linkUp", .bool(linkUp))]
                + (deadLetters.map { [("deadLetters", .int(Int64($0)))] } ?? [("outboxBusy", .bool(true))]))
        case .setHeartbeat(let seconds):
            guard let seconds, HeartbeatReply.allowed.contains(seconds) else {
                return (.refused, [("reason", .string("set-heartbeat needs args.seconds in 30...3600"))])
            }
            state.withLock {
                $0.heartbeat = .seconds(seconds)
                $0.supervisor.heartbeat = .seconds(seconds)
            }
            heartbeatNow.signal()
            return (.done, [("heartbeatSec", .int(seconds))])
        case .reloadConfig:
            switch reloadConfig(client) {
            case .applied(let v): return (.done, [("configVersion", .string(v))])
            case .unchanged(let v): return (.done, [("configVersion", v.map { .string($0) } ?? .null), ("unchanged", .bool(true))])
            case .refused(let v, let reason): return (.refused, [("configVersion", .string(v)), ("reason", .string(reason))])
            case .failed(let reason): return (.failed, [("reason", .string(reason))])
            }
        case .resetCounter(let sensor):
            guard let sensor else { return (.refused, [("reason", .string("reset-counter needs args.sensor, the sensor's id"))]) }
            let answer = hub.resetCounter(sensor, by: "the platform (command \(command.id))")
            if let error = answer["error"]?.stringValue { return (.refused, [("reason", .string(error))]) }
            return (.done, answer.objectFields ?? [])
        case .unknown(let kind):
            return (.refused, [("reason", .string("this hub does not know the command \(kind)"))])
        }
    }

    /// The result is idempotent by command id; a few quick tries, then it is given up (the command
    /// itself already ran, and the platform can ask for diagnostics again).
    func postResult(_ command: PlatformCommand, _ outcome: PlatformCommand.Outcome, _ detail: [(String, JSONValue)], client: HTTPClient) {
        let body = PlatformCommand.result(id: command.id, outcome, detail: detail)
        let url = settings.uplink.baseURL + "/v1/hubs/\(settings.uplink.hubID)/commands/\(command.id)/result"
        for attempt in 0..<5 {
            if let r = try? client.send("POST", url, headers: ["Content-Type: application/json", "Idempotency-Key: \"\(command.id)\""], body: body),
               (200..<300).contains(r.status) || r.status == 404 { return }
            loops.commands.sleep(.seconds(1 << attempt))
        }
    }
}

/// Lets the lanes report to a link built after them.
final class ReportRelay: Sendable {
    let target = Mutex<(@Sendable (DeliveryLanes.Report) -> Void)?>(nil)
    func forward(_ report: DeliveryLanes.Report) {
        let t = target.withLock { $0 }
        t?(report)
    }
}
