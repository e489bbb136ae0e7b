#if canImport(Glibc)
import Glibc
#endif
import BLEInput
import Logging
import Outbox
import SerialInput
import Synchronization
import Uplink
import VaktpostCore
import VaktpostPosix

/// How `vaktpost run` was asked to run.
public struct RunOptions: Sendable {
    public var configPath: String
    public var socketPath: String
    /// 0660 with the `vaktpost` group in production; the daemon checks the caller itself as well.
    public var socketMode: UInt32
    public var auditLog: String
    /// How long the start waits for the outbox's open before it runs from a stand-in (a card
    /// that hangs); tests make it short.
    var standInAfterHang = HubDaemon.standInAfterHang
    /// Tests: runs first on the thread that opens the outbox (a card that hangs cannot be made
    /// without strace).
    var openingOutbox: (@Sendable () -> Void)? = nil
    /// Demo and tests: a simulated timeline from this moment, `speed` times faster than real time.
    public var start: WallTime?
    public var speed: Double
    /// Tests: the wall clock and its synchronisation instead of the system's (a clock step
    /// cannot be made for real without CAP_SYS_TIME).
    public var wallClock: (@Sendable () -> WallTime)?
    public var wallClockSynced: (@Sendable () -> Bool)?

    public static let defaultSocket = "/run/vaktpost/control.sock"
    public static let defaultAuditLog = "/var/log/vaktpost/audit.log"

    public init(configPath: String, socketPath: String = defaultSocket, socketMode: UInt32 = 0o660, auditLog: String = defaultAuditLog,
                start: WallTime? = nil, speed: Double = 1) {
        self.configPath = configPath
        self.socketPath = socketPath
        self.socketMode = socketMode
        self.auditLog = auditLog
        self.start = start
        self.speed = speed
    }
}

public struct DaemonError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The running agent: inputs → rule engine → outbox → platform link, one composition.
///
/// Threads: every input has its own loop; the rule engine and what it needs sit behind one lock
/// (`core`), taken for one reading or one timer step at a time. The events a step produced go to
/// the outbox's writer with the rule state, and are written with it in one transaction, so a
/// crash can never separate an alarm from the state that raised it. The step waits for that
/// write, unless it hangs (`LockedOutbox`).
public final class HubDaemon: HubControl {
    public let options: RunOptions
    public let config: Config
    let sensorConfigs: [SensorID: SensorConfig]
    let zone: TimeZoneRules
    let timeline: Timeline
    public let clock: HubClock
    let outbox: LockedOutbox
    /// What memory holds for the outbox (a write that hangs, a disk that refuses writes), copied
    /// to tmpfs so that a kill does not lose it.
    let memoryCopy: MemoryCopy
    let linkBox = Mutex<PlatformLink?>(nil)
    /// The uplink; nil when the config has no `[platform]`.
    public var link: PlatformLink? { linkBox.withLock { $0 } }
    let engine: RuleEngine
    let logger: Logger
    let startedAt: UInt64
    /// The config file's version, read once: a new config restarts the agent.
    let fileVersion: String?
    let historyStore: BTHomeHistoryStore

    struct Core {
        var state: EngineState
        var factory: EventFactory
        var ble: BLERouter
        var serial: SerialRouter
        var sensors: [SensorID: HealthSnapshot.SensorHealth]
        var receivers: [String: HealthSnapshot.Receiver]
        var bleCondition: ConditionAlarm
        var serialConditions: [String: ConditionAlarm]
        /// The latest events, newest last, for `vaktpost events tail`.
        var recent: [(seq: UInt64, json: JSONValue)] = []
        /// Active alarms not yet cleared, by event id.
        var openAlarms: [EventID: JSONValue] = [:]
        var acknowledgements: [EventID: (status: AlarmHandling, after: Duration)] = [:]
        /// What the agent restarts onto (a re-exec, same pid), when it is to: said by `vaktpost run`.
        var restartOnto: String?
        var floods = FloodWatch()
        /// When the journal last said a sensor's packets are refused, and whether it has yet to
        /// say it is heard again: once per run of refusals, at most every `refusalSaidEvery`.
        var refusalSaid: [SensorID: (at: WallTime, open: Bool)] = [:]
        /// Boot time of the oldest state or log event waiting for company (see `commit`).
        var pendingSince: UInt64?
        /// A write of the outbox that hangs, as reported (`reportHang`).
        var hanging: HangingWrite?
        /// A pushed config is in place, its restart waiting for a write that hangs.
        var restartWhenWritten = false
    }
    let core: Mutex<Core>
    /// The outbox's open the start stopped waiting for (the card hangs): the agent runs from the
    /// stand-in until it ends (`restartOntoTheOutbox`).
    let pendingOpen: OutboxOpening?

    let tickLoop = BackgroundLoop(label: "vaktpost.rules")
    /// Runs while the agent stops (`watchTheStop`).
    let stopWatch = BackgroundLoop(label: "vaktpost.stop-watch")
    let stopWatched = Atomic<Bool>(false)
    let controlLoop = BackgroundLoop(label: "vaktpost.control")
    let replayLoop = BackgroundLoop(label: "vaktpost.ble.replay")
    /// Readers put what they hear here; the rules take it in on the intake's thread.
    let intake = Intake(label: "vaktpost.intake")
    /// Checkpoints the outbox's WAL beside its writer, woken by the commit that grew it.
    let checkpointLoop = BackgroundLoop(label: "vaktpost.outbox.checkpoint")
    /// Saves the BTHome counters every 10 s when they moved, off the rules' loop: a card that
    /// hangs a write must not stop the timers (and the watchdog they feed) with it.
    let historyLoop = BackgroundLoop(label: "vaktpost.bthome.save")
    let scanner: Mutex<HCIScanner?> = Mutex(nil)
    let receivers: Mutex<[SerialReceiver]> = Mutex([])
    /// The serial receivers' ports, opened before the outbox (see `init`), by receiver name.
    let earlySerial: [String: SerialReceiver.OpenPort]
    /// The BLE socket the previous run kept scanning, with what was heard since in it.
    let keptBLE: Int32?
    let listener: Mutex<UnixListener?> = Mutex(nil)
    let stopped = Atomic<Bool>(false)
    let shutdownAsked = Atomic<Bool>(false)

    /// Opens everything the agent needs, or says what is wrong and how to fix it.
    public init(options: RunOptions, logger: Logger) throws {
        self.options = options
        self.logger = logger
        let checked = ConfigFile.check(path: options.configPath)
        guard let config = checked.config, let zone = checked.timeZone else {
            let first = checked.report.diagnostics.first { $0.severity == .error }
            throw DaemonError("\(options.configPath): \(first.map { $0.rendered(file: options.configPath) } ?? "invalid") (run `vaktpost config check --config \(options.configPath)`)")
        }
        self.config = config
        // The receivers' ports first: opening and checking the outbox reads all of it (130 ms
        // for a backlog of 100,000 events here with a hot cache, more on an SD card with a cold
        // one), and a telegram sent to a port nobody has open is lost, a button press too.
        // Open, the kernel keeps it.
        // A port the previous run kept open (systemd's store, or a re-exec) is taken as it is:
        // what the stick sent during the restart is in it.
        earlySerial = Dictionary(config.serial.compactMap { r in SerialReceiver.openEarly(.init(r)).map { (r.name, $0) } },
                                 uniquingKeysWith: { first, _ in first })
        for name in SerialReceiver.releaseUnclaimedPorts() { logger.notice("closed the port kept as \(name): no receiver of that name is configured now") }
        keptBLE = Self.scanning(config).flatMap { HCIScanner.keptSocket($0) }
        for name in HCIScanner.releaseUnclaimedSockets() { logger.notice("closed the Bluetooth socket kept as \(name): the config scans otherwise now, or not at all") }
        sensorConfigs = Dictionary(config.sensors.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.zone = zone
        let simulated = options.start != nil || options.speed != 1
        let wall = options.wallClock ?? { WallTime(nanosecondsSinceEpoch: SystemClock.now()) }
        let systemSynced = options.wallClockSynced ?? { SystemClock.isSynchronized() }
        let timeline = Timeline(start: options.start, speed: options.speed, wall: wall, synced: simulated || systemSynced())
        self.timeline = timeline
        let bootID = SystemClock.bootID()
        // Simulated time (demo, tests) counts as synchronised: it is exactly what it claims to be.
        let synced: @Sendable () -> Bool = { simulated || systemSynced() }
        // For durations (link supervision, backoff): boot time from the start, so that a
        // wall-clock step does not make the link look lost for an hour.
        let startWall = wall(), startBoot = SystemClock.boottime()
        let real: @Sendable () -> WallTime = { startWall + .nanoseconds(Int64(SystemClock.boottime() &- startBoot)) }
        clock = HubClock(zone: zone, bootID: bootID, now: { timeline.now() }, boottime: { SystemClock.boottime() }, synced: synced, elapsed: real, wall: wall)
        engine = RuleEngine(config: config, zone: zone)
        startedAt = SystemClock.boottime()
        fileVersion = Self.fileVersion(options.configPath)
        historyStore = BTHomeHistoryStore(path: config.outbox.directory + "/bthome.json")

        let stamp = clock.stamp
        let now = clock.now
        let limits = OutboxLimits(config.outbox)
        let standIn = Self.standInPath(socket: options.socketPath)
        let path = config.outbox.path
        var box: Outbox! = nil
        var standInFor: String? = nil
        var absorbed: (events: Int, event: EventID?, type: EventType)? = nil
        // The outbox measures real time (batch ages, acceptance); its own events are stamped like all others.
        let opening = OutboxOpening { [options] in
            options.openingOutbox?()
            return try Outbox(path: path, limits: limits, now: real, makeEvent: Self.ownEventMaker(stamp: stamp, now: now))
        }
        var openHangs = false
        do {
            // Opening reads all of it: on a card that hangs, that is said while it lasts, and past
            // `standInAfterHang` the agent runs from a stand-in (below) until the open returns.
            try SlowStep.watch(after: Self.hangReportedAfter, every: .seconds(10), waiting: { [logger, options] waited in
                let text = DurationText.format(waited)
                let next = waited < options.standInAfterHang ? "the agent runs from a stand-in on tmpfs after \(DurationText.format(options.standInAfterHang)) if it has not returned by then" : "no alarm can go out until it does"
                logger.critical("opening the outbox \(path) has taken \(text) and has not returned: the SD card hangs or is very slow, and \(next); look for I/O errors in the kernel log (dmesg) and replace the card if there are any")
                SystemdNotify.send("STATUS=opening the outbox: \(text), the SD card hangs or is very slow")
            }, returned: { took in
                // Said whether it opened or failed (the failure is said below); the stand-in says its own.
                if !openHangs { logger.warning("opening the outbox \(path) took \(took.nanoseconds / 1_000_000) ms") }
            }) {
                guard let opened = try opening.wait(upTo: options.standInAfterHang) else {
                    openHangs = true
                    return
                }
                box = opened
                absorbed = Self.takeIn(standIn, into: opened, config: config, logger: logger, failing: "the stand-in outbox \(standIn) could not be moved into \(path)")
            }
        } catch {
            // Without an outbox the agent would not start, and no alarm would go out (a worn SD
            // card the kernel remounted read-only, a state directory missing): it runs from a
            // stand-in on the runtime directory's tmpfs instead, continuing the outbox's seqs,
            // and says so. What the stand-in holds survives restarts of the agent, not of the hub.
            box = try Self.openStandIn(standIn, for: path, cause: "\(error)", seqFloor: Outbox.nextSeq(readingFrom: path, limits: limits),
                                       limits: limits, now: real, makeEvent: Self.ownEventMaker(stamp: stamp, now: now))
            standInFor = "\(error)"
            logger.critical("cannot open the outbox \(path) (\(error)): running from a stand-in at \(standIn) (memory: lost if the hub loses power); check that the directory exists and belongs to the agent's user, and the kernel log (dmesg) for I/O errors (replace the SD card); then restart the agent")
        }
        if openHangs {
            // The card holds the open (and would hold a read of the seq counter too): the
            // stand-in's seqs start from the clock, above every seq the outbox gave out.
            let cause = "opening the outbox has not returned after \(DurationText.format(options.standInAfterHang)): the SD card hangs"
            box = try Self.openStandIn(standIn, for: path, cause: cause, seqFloor: nil,
                                       limits: limits, now: real, makeEvent: Self.ownEventMaker(stamp: stamp, now: now))
            standInFor = cause
            pendingOpen = opening
        } else {
            pendingOpen = nil
        }
        // What an earlier run held in memory for the outbox when it was killed (a write that hung,
        // a disk that refused writes: `MemoryCopy`): taken in by the outbox, or by its stand-in.
        let copyPath = MemoryCopy.path(socket: options.socketPath)
        let copied = Self.takeIn(copyPath, into: box, config: config, logger: logger,
                                 failing: "the copy \(copyPath) of what the last run held in memory for the outbox when it ended could not be taken into the outbox \(box.path)")
        memoryCopy = MemoryCopy(path: copyPath, limits: limits) { path, floor in
            try Outbox(path: path, limits: limits, seqFloor: floor, now: real, makeEvent: Self.ownEventMaker(stamp: stamp, now: now))
        }
        let uncleanStop = UncleanStop(of: box)
        // The rule state committed with the last events. Unreadable (damaged on the card, or
        // written by a newer agent) the rules start afresh, and that is said below: a timer
        // running before the stop (not back in bed within 30 minutes) is not running now.
        var savedState: EngineState? = nil, ruleStateLost: String? = nil
        do { savedState = try box.loadRuleState() } catch { ruleStateLost = "\(error)" }
        if let cause = standInFor, pendingOpen != nil {
            // A stand-in for an open that hangs, with no rule state of its own (nor one the copy
            // above brought) runs its rules afresh: the timers saved in the outbox (not back in
            // bed) wait for the open, and the restart onto it takes them up again.
            let afresh = savedState == nil
            if afresh { try? box.setNote(Outbox.rulesAfreshNote, "1") }
            logger.critical("\(cause): running from a stand-in at \(standIn) (memory: lost if the hub loses power) until it returns; then the agent restarts onto the outbox and takes the stand-in in. \(afresh ? "Meanwhile the rules run without the timers saved in the outbox: check on the resident if one may have been running (out of bed at night, a door left open). " : "")Look for I/O errors in the kernel log (dmesg) and replace the SD card if there are any")
        }
        outbox = LockedOutbox(box, bound: limits.memoryEvents) { [logger] events, error in
            // The outbox refused (the disk takes no writes and memory holds all the alarms it
            // may): this is the one place events can be lost, so it is shouted, with what to do.
            logger.critical("EVENTS NOT STORED (\(events.map(\.type.rawValue))): \(error)")
        }

        // Beside the outbox, on the card: a card that hangs holds this read too, and the agent
        // starts without the counters rather than wait (as when they are unreadable).
        var histories: [String: BTHomeHistory] = [:]
        let store = historyStore
        switch BoundedRead.run(within: Self.countersReadWithin, label: "vaktpost.bthome.load", { try store.load() }) {
        case .success(let loaded)?: histories = loaded
        case .failure(let error)?: logger.error("BTHome counters unreadable (\(error)); starting without them")
        case nil: logger.critical("the BTHome counters \(store.path) were not read within \(DurationText.format(Self.countersReadWithin)) (the SD card hangs): starting without them, so a BTHome packet replayed from before this start is not recognised; look for I/O errors in the kernel log (dmesg)")
        }
        var sensorHealth: [SensorID: HealthSnapshot.SensorHealth] = [:]
        for s in config.sensors { sensorHealth[s.id] = HealthSnapshot.SensorHealth(deviceID: s.id.rawValue) }
        var serialConditions: [String: ConditionAlarm] = [:]
        for r in config.serial { serialConditions[r.name] = .serialReceiver(r.name) }
        let first = Core(state: savedState ?? EngineState(), factory: EventFactory(rng: SystemRandomNumberGenerator(), stamp: stamp),
                         ble: BLERouter(sensors: config.sensors, histories: histories), serial: SerialRouter(sensors: config.sensors),
                         sensors: sensorHealth, receivers: [:], bleCondition: .bleAdapter(config.ble.adapter), serialConditions: serialConditions)
        core = Mutex(first)

        if let platform = config.platform {
            let settings = PlatformLink.Settings(
                uplink: UplinkSettings(baseURL: platform.url, secondaryURL: platform.secondaryURL, hubID: config.hub.id, tls: TLSSettings(platform)),
                heartbeat: platform.heartbeat, acknowledgeWithin: platform.acknowledgeWithin, configVersion: fileVersion)
            let link = PlatformLink(settings: settings, outbox: outbox, clock: clock, hub: self) { [weak self] n in self?.noticed(n) }
            linkBox.withLock { $0 = link }
        }
        if let uncleanStop { raiseUncleanStart(uncleanStop) }
        if let ruleStateLost {
            raise(.outboxRecovered, data: [("ruleState", .string("unreadable: the rules started afresh")), ("reason", .string(ruleStateLost))])
            logger.critical("the rule state in \(box.path) could not be read (\(ruleStateLost)): the rules started afresh, so a timer that was running before this start (not back in bed, door left open, not up by, no activity) is not; check on the resident if one may have been, and look for I/O errors in dmesg")
        }
        try? outbox.with { try $0.setNote("boot_id", bootID) }
        if let cause = standInFor, ((try? outbox.with { try $0.note("stand_in_event") }) ?? nil) == nil {
            // Raised once per stand-in (a restart still without the disk finds it raised).
            let id = raise(.outboxWriteFailed, data: [("error", .string(cause)), ("outbox", .string(config.outbox.path)), ("standIn", .string(standIn))])
            try? outbox.with { try $0.setNote("stand_in_event", id?.description) }
        }
        if let absorbed {
            if let event = absorbed.event { raise(absorbed.type, .cleared, correlation: event, data: [("moved", .int(Int64(absorbed.events)))]) }
            logger.notice("the outbox writes again: the \(absorbed.events) events the stand-in \(standIn) still held are in it")
        }
        takeInStandInRules()
        if let copied {
            // The disk's hold, and the hang, that run reported ended with it (this outbox writes).
            if let event = copied.event { raise(copied.type, .cleared, correlation: event, data: [("moved", .int(Int64(copied.events)))]) }
            if let hang = ((try? outbox.with { try $0.note("hang_event") }) ?? nil).flatMap(EventID.init) {
                raise(.outboxWriteFailed, .cleared, correlation: hang, data: [("moved", .int(Int64(copied.events)))])
                try? outbox.with { try $0.setNote("hang_event", nil) }
            }
            logger.notice("the \(copied.events) events the last run held in memory for the outbox when it ended (kept in \(copyPath)) are in the outbox")
        }
    }

    /// The stand-in outbox on tmpfs, continuing the outbox's seqs from `seqFloor` (nil when the
    /// outbox cannot be read for them: from the clock, above every seq it gave out).
    static func openStandIn(_ standIn: String, for path: String, cause: String, seqFloor: UInt64?, limits: OutboxLimits,
                            now: @escaping @Sendable () -> WallTime, makeEvent: @escaping TechnicalEventMaker) throws -> Outbox {
        let floor = seqFloor ?? UInt64(max(1, now().millisecondsSinceEpoch)) * 1000
        do {
            let box = try Outbox(path: standIn, limits: limits, seqFloor: floor, now: now, makeEvent: makeEvent)
            box.standingIn = (path, cause)
            return box
        } catch {
            throw DaemonError("cannot open the outbox \(path) (\(cause)), nor a stand-in at \(standIn) (\(error)). "
                              + "Check that the directory exists and belongs to the agent's user (systemd's StateDirectory=vaktpost makes /var/lib/vaktpost), "
                              + "and the kernel log (dmesg) for I/O errors")
        }
    }

    /// A file an earlier run left on tmpfs (the stand-in, the memory copy), taken into `box` and
    /// removed. If it cannot be, it is kept for the next start, `box`'s seqs continue above its,
    /// and the journal says so (`failing`, then what to do): nil then, as when there is none.
    static func takeIn(_ path: String, into box: Outbox, config: Config, logger: Logger, failing: String) -> (events: Int, event: EventID?, type: EventType)? {
        guard access(path, F_OK) == 0 else { return nil }
        do {
            let taken = try box.absorb(standIn: path)
            Outbox.removeFiles(path)
            return taken
        } catch {
            box.continueAbove(standIn: path)
            logger.critical("\(failing) (\(error)); it is kept for the next start, and the events it holds wait until then: free space on the hub's disk (df -h \(config.outbox.directory)) or look for I/O errors in the kernel log (dmesg), then restart the agent")
            return nil
        }
    }

    /// Where the outbox stands in when its own cannot be opened: beside the control socket, on
    /// the runtime directory's tmpfs (/run/vaktpost), which the unit keeps across restarts.
    static func standInPath(socket: String) -> String { socket.parentDirectory + "/outbox-stand-in.sqlite" }

    /// The outbox's own technical events (pressure, disk full, recovered), stamped like all others.
    static func ownEventMaker(stamp: @escaping @Sendable (WallTime) -> EventTime, now: @escaping @Sendable () -> WallTime) -> TechnicalEventMaker {
        let factory = Mutex(EventFactory(rng: SystemRandomNumberGenerator(), stamp: stamp))
        return { type, state, correlation, data in
            factory.withLock { f -> Event in
                f.hubEvent(type, state, at: now(), correlation: correlation, data: data)
                return f.take()[0]
            }
        }
    }

    /// A version for a config file that did not come from the platform: its content hash.
    static func fileVersion(_ path: String) -> String? {
        guard let bytes = try? Files.read(path, limit: 1 << 20) else { return nil }
        return "file-" + String(ContentHash.fnv1a(bytes), radix: 16)
    }

    // MARK: Running

    /// The agent's parts, started in this order and stopped in the reverse one: the rules (and
    /// the outbox they commit to) outlive everything that feeds them or reads from them, and the
    /// inputs outlive the uplink, whose stop waits up to a second for libcurl to give up a
    /// request: a sensor heard meanwhile is stored and sent after the restart, not unheard.
    public enum Part: String, CaseIterable, Sendable {
        case rules, inputs, uplink, control
    }

    public func start(_ part: Part) throws {
        switch part {
        case .rules:
            outbox.startWriter { [weak self] in self?.link?.wake() }
            tickLoop.start { [self] in tickLoopBody() }
            checkpointLoop.start { [self] in checkpointLoopBody() }
            historyLoop.start { [self] in historyLoopBody() }
        case .uplink: link?.start()
        case .control:
            let listener = try UnixListener(path: options.socketPath, mode: options.socketMode)
            self.listener.withLock { $0 = listener }
            controlLoop.start { [self] in serveControl() }
        case .inputs:
            startInputs()
        }
        guard part == Part.allCases.last else { return }
        SystemdNotify.send("READY=1\nSTATUS=running: \(config.sensors.count) sensors, uplink \(link == nil ? "not configured" : "starting")")
        logger.notice("vaktpost \(AgentInfo.version) running for hub \(config.hub.id): \(config.sensors.count) sensors, control socket \(options.socketPath)")
    }

    public func stop(_ part: Part) {
        if part == Part.allCases.last { SystemdNotify.send("STOPPING=1") }
        watchTheStop()
        switch part {
        case .inputs:
            // Before a re-exec the socket and the ports stay open for the new image (`portsForNextRun`).
            let keeping = restartRequested
            scanner.withLock { $0 }?.stop(keepingSocket: keeping)
            receivers.withLock { $0 }.forEach { $0.stop(keepingPort: keeping) }
            replayLoop.stop()
            intake.stop()  // what was heard before is taken in
        case .control:
            controlLoop.stop()
            listener.withLock { $0 = nil }
        case .uplink:
            link?.stop()
        case .rules:
            tickLoop.stop()
            checkpointLoop.stop()
            historyLoop.stop()
            step()  // timers due by now
            core.withLock { c in commitAll(&c) }  // and what waits for company
            outbox.stopWriter()  // everything handed over is in the outbox (`watchTheStop`)
            // A hang reported and over by now: cleared here, the rules' loop being stopped
            // (stored at once, the writer being stopped; sent by the next start).
            if let hang = core.withLock({ $0.hanging }) { _ = reportHang(hang) }
            try? historyStore.save(core.withLock { $0.ble.histories })
            let ruleState = core.withLock { $0.state }
            var lost = false
            try? outbox.with { o in
                do {
                    try o.flushMemory()
                } catch {
                    lost = !spillAtStop(o, error, ruleState: ruleState)
                }
                try o.checkpoint()
                try o.close()
            }
            // What memory held is on disk or in the stand-in; if neither took it, its copy stays.
            if !lost { memoryCopy.discard() }
            stopWatch.stop()
            logger.notice("stopped cleanly")
            if openHangs {
                logger.critical("the outbox's open has still not returned (the SD card hangs): this process ends only when the card answers it (a thread inside a read cannot be killed), and systemd cannot start the agent again until then. What the agent accepted is in the stand-in \(Self.standInPath(socket: options.socketPath)), which the next start takes in. Replace the card; do not power the hub off before the agent runs again unless the card is dead (/run is memory)")
            }
        }
    }

    /// Everything at once (tests and tools); `vaktpost run` starts the parts as services.
    public func start() throws {
        for part in Part.allCases { try start(part) }
    }

    /// Stops everything, commits what was accepted, marks the stop clean.
    public func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        for part in Part.allCases.reversed() { stop(part) }
    }

    public var restartRequested: Bool { restartOnto != nil }
    /// What the restart asked for is onto: "the new configuration", "the outbox".
    public var restartOnto: String? { core.withLock { $0.restartOnto } }

    /// After a stop for a re-exec: the receivers' ports and the Bluetooth socket, still open, to
    /// hand to the new image.
    public func portsForNextRun() -> [(name: String, fd: Int32)] {
        receivers.withLock { $0 }.compactMap { $0.portForNextRun() } + [scanner.withLock { $0 }?.socketForNextRun()].compactMap { $0 }
    }

    /// How the adapter is scanned, when it is: BLE sensors configured and no capture replayed.
    static func scanning(_ config: Config) -> HCIScanner.Options? {
        guard config.ble.replay == nil, config.sensors.contains(where: { $0.transport == .ble || $0.ble != nil }) else { return nil }
        return .init(adapter: config.ble.adapter, mode: config.ble.mode, silentAfter: config.ble.silentAfter, keepAcrossRestarts: true)
    }
    /// Someone trusted asked over the control socket (`vaktpost wipe`).
    public var shutdownRequested: Bool { shutdownAsked.load(ordering: .relaxed) }
    func requestShutdown() {
        shutdownAsked.store(true, ordering: .relaxed)
        stopWanted.continuation.yield()
    }

    /// Yields when the daemon itself wants to stop (wipe, a new config): `vaktpost run` waits on
    /// it instead of polling, so an idle hub does not wake for nothing.
    public var stopRequests: AsyncStream<Void> { stopWanted.stream }
    let stopWanted = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))

    func startInputs() {
        intake.start { [weak self] dropped in
            self?.logger.critical("\(dropped) readings dropped unread: the rules were held up (a stalled disk?) while the queue of what the receivers heard was full")
        }
        let intake = self.intake, clock = self.clock
        let handleHCI: @Sendable ([UInt8], WallTime) -> Void = { [weak self] event, time in
            guard let self, case .success(let reports) = HCI.advertisingReports(event) else { return }
            for r in reports { intake.put(heard: time, from: "ble " + r.address) { [weak self] in self?.heardBLE(r, at: time) } }
        }
        if let file = config.ble.replay {
            // A capture instead of the adapter: each record is handed over when the timeline reaches it.
            let records: [BTSnoopRecord]
            do { records = try BTSnoopSource.events(path: file) } catch {
                logger.error("[ble] replay \(file): \(error)")
                condition(ble: .unavailable(reason: "the replay file \(file) cannot be read: \(error)"))
                return
            }
            let startedAt = timeline.now()
            replayLoop.start { [self] in
                // Records from before the agent started happened while it was not listening.
                for record in records where record.time >= startedAt - .seconds(1) {
                    while !replayLoop.isStopped && timeline.now() < record.time { replayLoop.sleep(.milliseconds(20)) }
                    if replayLoop.isStopped { return }
                    handleHCI(record.event, record.time)
                }
            }
        } else if let options = Self.scanning(config) {
            let s = HCIScanner(options: options, socket: keptBLE, now: clock.now, onEvent: handleHCI, onCondition: { c in intake.put(heard: clock.now(), from: "condition") { [weak self] in self?.condition(ble: c) } })
            scanner.withLock { $0 = s }
            s.start()
        }
        let serial = config.serial.map { r in
            SerialReceiver(options: .init(r), port: earlySerial[r.name], now: clock.now,
                           onTelegram: { t, time in intake.put(heard: time, from: "enocean " + (t.senderID ?? "?")) { [weak self] in self?.heardSerial(t, at: time, receiver: r.name) } },
                           onCondition: { c in intake.put(heard: clock.now(), from: "condition") { [weak self] in self?.condition(serial: c, receiver: r.name) } })
        }
        receivers.withLock { $0 = serial }
        serial.forEach { $0.start() }
    }

    // MARK: Readings and timers

    func heardBLE(_ report: AdvertisingReport, at time: WallTime) {
        core.withLock { c in
            let heard = c.ble.handle(report, at: time, decrypt: AESCCM.decrypt)
            if let reading = heard.reading { apply(reading, &c) }
            if let sensor = heard.sensor, let rejection = heard.rejection, rejection.saysTheSensorIsNotHeard {
                refused(sensor, rejection.description, at: time, &c, remedy: "A wrong bthome_key: check it against the sensor's. A counter that went back after a battery change: `vaktpost reset-counter \(sensor)`. Otherwise someone may be replaying or spoofing it")
            }
        }
    }

    /// A configured sensor's packet refused for a reason its repeats never have (a wrong key, a
    /// counter that went back, an EnOcean eep that does not fit what it sends): until a packet is
    /// taken again the sensor is not heard, and
    /// `sensor.silent` would say so only after its supervision time, and not why. The rules raise
    /// `sensor.refused` for the platform; the journal says it at the first refusal (at most every
    /// 10 minutes: a sensor whose packets are taken among refused ones would otherwise fill it);
    /// `vaktpost status` and the heartbeat say it until a packet is taken.
    func refused(_ sensor: SensorID, _ reason: String, at time: WallTime, _ c: inout Core, remedy: String) {
        var health = c.sensors[sensor] ?? .init(deviceID: sensor.rawValue)
        if health.refused == nil, c.refusalSaid[sensor].map({ time - $0.at >= Self.refusalSaidEvery || time < $0.at }) ?? true {
            c.refusalSaid[sensor] = (time, true)
            logger.error("the packets of sensor \(sensor) are refused: \(reason); it is not heard until one is taken. \(remedy)")
        }
        health.refused = .init(reason: reason, count: (health.refused?.count ?? 0) + 1, since: health.refused?.since ?? time)
        c.sensors[sensor] = health
        engine.refused(sensor, reason: reason, at: time, state: &c.state, events: &c.factory)
        commit(&c)
    }

    static let refusalSaidEvery: Duration = .seconds(600)

    func heardSerial(_ telegram: ESP3Telegram, at time: WallTime, receiver: String) {
        core.withLock { c in
            let heard = c.serial.handle(telegram, at: time, receiver: receiver)
            if !heard.repeated, let reading = heard.reading { apply(reading, &c) }
            if let sensor = heard.sensor, let misfit = heard.misfit {
                refused(sensor, misfit, at: time, &c, remedy: "Set its eep in the config to the sensor's profile: `vaktpost scan --serial` shows what it sends (a teach-in names its profile). An encrypted sensor: turn EnOcean security off on it")
            }
        }
    }

    /// One reading through the engine; its events committed with the new rule state.
    func apply(_ reading: Reading, _ c: inout Core) {
        var health = c.sensors[reading.sensor] ?? .init(deviceID: reading.sensor.rawValue)
        health.lastSeen = reading.receivedAt
        health.batteryPercent = reading.values.battery ?? health.batteryPercent
        health.rssi = reading.values.rssi ?? health.rssi
        health.state = Self.describe(reading.values) ?? health.state
        if let refusal = health.refused {
            health.refused = nil
            if c.refusalSaid[reading.sensor]?.open == true {
                c.refusalSaid[reading.sensor]!.open = false
                logger.notice("sensor \(reading.sensor) is heard again after \(refusal.count) refused packets")
            }
        }
        c.sensors[reading.sensor] = health
        engine.handle(reading, state: &c.state, events: &c.factory)
        if let sensor = sensorConfigs[reading.sensor] { c.floods.heard(sensor, at: reading.receivedAt, events: &c.factory) }
        commit(&c)
        // A reading may have started a timer (a debounce, the 30 minutes): the rules loop
        // must not sleep past it.
        tickLoop.wake()
    }

    static func describe(_ v: ReadingValues) -> String? {
        if let o = v.occupied { return o ? "occupied" : "vacant" }
        if let o = v.open { return o ? "open" : "closed" }
        if let m = v.motion { return m ? "motion" : "still" }
        if v.fall == true { return "fall" }
        if v.pressed == true { return "pressed" }
        return nil
    }

    /// How long live state and log events may wait for company before they are committed.
    static let groupCommit: UInt64 = 200_000_000

    /// Inside the core lock: the factory's events and the rule state, in one outbox transaction.
    ///
    /// Live state and log events wait up to `groupCommit` (200 ms) or 100 events for others, so
    /// that a busy hub writes one transaction (a handful of pages) for many readings instead of
    /// one per reading: on an SD card that is most of the difference (docs/benchmarks.md). An
    /// alarm, a technical or a test event goes at once and takes the waiting ones with it, in
    /// order. A crash loses at most 200 ms of such readings, which nobody was told about, and
    /// the rule state rolls back with them, so the two never disagree.
    ///
    /// The events go to the outbox's writer (`LockedOutbox.hand`), which stores them on a thread
    /// of its own: if a write hangs, the rules wait for it one second, then go on, and alarms
    /// raised meanwhile are sent from memory.
    @discardableResult
    func commit(_ c: inout Core, force: Bool = false) -> Bool {
        for e in outbox.takeStored() { remember(e, &c) }
        guard !c.factory.events.isEmpty else { return true }
        if !force, c.factory.events.count < 100, c.factory.events.allSatisfy({ $0.eventClass == .state || $0.eventClass == .log }) {
            let since = c.pendingSince ?? SystemClock.boottime()
            c.pendingSince = since
            if SystemClock.boottime() - since < Self.groupCommit { return true }
        }
        c.pendingSince = nil
        let events = outbox.stamp(c.factory.take())
        defer { link?.wake() }
        let handed = outbox.hand(events, ruleState: c.state)
        for e in outbox.takeStored() { remember(e, &c) }
        guard handed != .refused else { return false }
        for e in events { noteOpenAlarm(e, &c) }
        for e in events where e.eventClass == .alarm {
            logger.critical("ALARM \(e.type.rawValue) \(e.state.rawValue) \(e.sensor?.rawValue ?? "") \(e.room?.rawValue ?? "")")
        }
        return true
    }

    /// Everything now, and the rule state even if no event waits: a sensor's first reading
    /// changes it without one, and the next start (the restart onto an outbox whose open hung,
    /// `takeInStandInRules`) must know what the rules knew.
    func commitAll(_ c: inout Core) {
        if c.factory.events.isEmpty { outbox.hand([], ruleState: c.state) } else { commit(&c, force: true) }
    }

    /// A stored event (with its seq) in the list `events tail` shows.
    func remember(_ e: Event, _ c: inout Core) {
        guard let seq = e.seq else { return }
        c.recent.append((seq, e.json))
        if c.recent.count > 500 { c.recent.removeFirst(c.recent.count - 500) }
    }

    /// The open alarms `vaktpost status` shows: as soon as they are accepted (with the seq they
    /// were stamped with), not when a write that hangs stores them.
    func noteOpenAlarm(_ e: Event, _ c: inout Core) {
        if e.eventClass == .alarm || e.type == .alarmUnacknowledged || e.type == .alarmUndelivered {
            switch e.state {
            case .active: c.openAlarms[e.eventID] = e.json
            case .cleared, .cancelled: c.openAlarms[e.correlationID] = nil
            case .update: break
            }
        }
    }

    /// Stores one event of the hub itself (its own, and the platform link's).
    @discardableResult
    public func raise(_ type: EventType, _ state: EventState = .active, correlation: EventID? = nil, data: [(String, JSONValue)] = []) -> EventID? {
        core.withLock { c in
            let id = c.factory.hubEvent(type, state, at: clock.now(), correlation: correlation, data: data)
            return commit(&c) ? id : nil
        }
    }

    func condition(ble condition: HCIScanner.Condition) {
        core.withLock { c in
            c.receivers[config.ble.adapter] = .init(name: config.ble.adapter, present: condition == .available)
            c.bleCondition.handle(condition, at: clock.now(), events: &c.factory)
            commit(&c)
        }
        if case .unavailable(let reason) = condition { logger.error("\(config.ble.adapter): \(reason)") }
    }

    func condition(serial condition: SerialReceiver.Condition, receiver: String) {
        core.withLock { c in
            switch condition {
            case .available(_, let version, _): c.receivers[receiver] = .init(name: receiver, present: true, version: version)
            case .unplugged: c.receivers[receiver] = .init(name: receiver, present: false)
            }
            c.serialConditions[receiver]?.handle(condition, at: clock.now(), events: &c.factory)
            commit(&c)
        }
        if case .unplugged(let reason) = condition { logger.error("\(receiver): \(reason)") }
    }

    /// Timers due by now: the engine advanced to the timeline's present, or to the oldest
    /// reading still waiting in the intake, whichever is earlier: a timer never fires ahead of
    /// a reading heard before it was due (nor does a flood seem to end while its telegrams wait).
    func step() {
        let now = timeline.now()
        let horizon = intake.oldestWaiting.map { min($0, now) } ?? now
        core.withLock { c in
            engine.advance(&c.state, to: horizon, events: &c.factory)
            c.floods.tick(at: horizon, sensors: sensorConfigs, events: &c.factory)
            commit(&c)
        }
    }

    /// The journal's side of `outbox.disk_full` / `outbox.write_failed`: a technician reading it
    /// over SSH learns what to do without the platform.
    func reportHold(_ hold: StorageHold?, held: Int) {
        if let hold {
            logger.critical("the outbox cannot write to \(config.outbox.path) (\(hold.cause)): events are held in memory (\(held) now) and sent from there, alarms first; \(Self.advice(hold, path: config.outbox.path))")
        } else {
            logger.notice("the outbox writes again: the events held in memory are on disk")
        }
    }

    /// From the stop's first part to its last: while a write of the outbox hangs, asks systemd
    /// for time (`StopDuringHang`). Any part's stop may wait behind that write (the bulk lane for
    /// its batch, the rules for the writer), and a kill would lose what waits for it in memory.
    func watchTheStop() {
        guard !stopWatched.exchange(true, ordering: .relaxed) else { return }
        stopWatch.start { [self] in
            let began = SystemClock.boottime()
            var hang = StopDuringHang()
            while !stopWatch.isStopped {
                copyWhatWaits()
                if let running = outbox.hangingFor {
                    let stopping = Duration.nanoseconds(Int64(SystemClock.boottime() &- began))
                    for step in hang.waiting(write: running, stopping: stopping, events: outbox.waitingForWrite, outbox: config.outbox.path, copy: memoryCopy.current) {
                        switch step {
                        case .notify(let message): _ = SystemdNotify.send(message)
                        case .say(let line): logger.critical("\(line)")
                        }
                    }
                }
                stopWatch.sleep(.seconds(1))
            }
        }
    }

    /// What memory holds for the outbox, kept in a copy on tmpfs (`MemoryCopy`) while it does.
    func copyWhatWaits() {
        let hang = core.withLock { $0.hanging?.event }
        if let line = memoryCopy.update(outbox, hanging: outbox.hangingFor != nil, hang: hang) { logger.critical("\(line)") }
    }

    /// The outbox takes no writes at this stop: what memory holds goes to the stand-in on tmpfs
    /// (a restart of the agent keeps it, and the next start runs from it or takes it in), not
    /// lost with the process. Only if that fails too are the events lost: said loudly.
    /// Returns whether the events are in the stand-in.
    func spillAtStop(_ o: Outbox, _ error: any Error, ruleState: EngineState) -> Bool {
        let standIn = Self.standInPath(socket: options.socketPath)
        let advice = Self.advice(o.hold, path: o.path)
        guard o.standingIn == nil else {
            // The stand-in itself takes no writes (tmpfs full: the hub is out of memory).
            logger.critical("EVENTS LOST WITH THIS STOP: \(o.inMemoryCount) events held in memory could not be written to the stand-in \(o.path) (\(error)); \(advice)")
            return false
        }
        do {
            let n = try o.spill(to: standIn, ruleState: ruleState)
            logger.critical("the outbox \(o.path) takes no writes at this stop (\(error)): the \(n) events held in memory are in the stand-in \(standIn) instead (kept across restarts of the agent, lost if the hub restarts); the next start takes them back in. \(advice)")
            return true
        } catch let second {
            logger.critical("EVENTS LOST WITH THIS STOP: \(o.inMemoryCount) events held in memory could not be written to \(o.path) (\(error)) nor to the stand-in \(standIn) (\(second)); \(advice)")
            return false
        }
    }

    static func advice(_ hold: StorageHold?, path: String) -> String {
        guard let hold, hold.type != .outboxDiskFull else { return "free space on the hub's disk (df -h \(path.parentDirectory))" }
        return "look for I/O errors in the kernel log (dmesg) and replace the SD card if it reports them; "
            + "if the outbox is locked, see which process holds it (fuser \(path))"
    }

    /// The outbox's checkpoints, off its lock (see `OutboxCheckpointer.run`).
    func checkpointLoopBody() {
        let checkpointer: OutboxCheckpointer
        do {
            checkpointer = try OutboxCheckpointer(path: try outbox.with { $0.path })
        } catch {
            logger.error("the outbox checkpoints inside its commits: no second connection to it (\(error))")
            return
        }
        let loop = checkpointLoop
        guard let activity = try? outbox.with({ o in
            o.onWALGrowth { loop.wake() }
            return o.walActivity
        }) else { return }
        checkpointer.run(on: loop, activity: activity) { logger.warning("\($0)") }
    }

    func historyLoopBody() {
        var saved: [String: BTHomeHistory]? = nil
        while !historyLoop.isStopped {
            historyLoop.sleep(.seconds(10))
            let histories = core.withLock { $0.ble.histories }
            if histories != saved, (try? historyStore.save(histories)) != nil { saved = histories }
        }
    }

    func tickLoopBody() {
        var lastAlive = SystemClock.boottime()
        var lastAliveNote = UInt64(0)
        var lastHold: StorageHold? = nil
        let watchdog = SystemdNotify.watchdogInterval
        while !tickLoop.isStopped {
            if let step = timeline.follow(synced: clock.synced()) {
                let jump = step.size, followed = step == .followed(jump)
                logger.warning("the wall clock moved \(DurationText.format(jump < .zero ? .zero - jump : jump)) \(jump < .zero ? "back" : "forward"); \(followed ? "it is synchronised, so the agent follows it" : "it is not synchronised, so the agent keeps its own time")")
                raise(.clockStepped, data: [("stepS", .int(jump.nanoseconds / 1_000_000_000)), ("followed", .bool(followed))])
            }
            let began = SystemClock.boottime()
            step()
            let now = SystemClock.boottime()
            if now - began > 100_000_000 { logger.warning("the rules loop took \((now - began) / 1_000_000) ms for one step (readings wait meanwhile)") }
            let hang = reportHang(core.withLock { $0.hanging })
            core.withLock { $0.hanging = hang }
            copyWhatWaits()
            restartIfWritten()
            restartOntoTheOutbox()
            // Housekeeping never waits for the disk: its writes go to the outbox's writer, and
            // what it reads is not waited for while a write hangs (it is read at the next round).
            // The loop must go on: it fires the timers and feeds the watchdog.
            if now - lastAlive >= 10_000_000_000 {
                lastAlive = now
                outbox.later { try? $0.flushMemory() }
                if let (hold, held) = try? outbox.with(within: .milliseconds(100), { o in (o.hold, o.inMemoryCount) }) {
                    if hold != lastHold { reportHold(hold, held: held) }
                    lastHold = hold
                }
                // What an idle hub writes: the last-alive mark once a minute (it dates an unclean
                // stop), the BTHome counters only when they moved; not two fsyncs every 10 s.
                if now - lastAliveNote >= 60_000_000_000 {
                    lastAliveNote = now
                    let stamp = RFC3339.format(clock.now(), utcOffsetSeconds: zone.utcOffset(at: clock.now()), fractionDigits: 0)
                    outbox.later { try? $0.setNote("last_alive", stamp) }
                }
                SystemdNotify.send("STATUS=\(statusLine())")
                let spent = SystemClock.boottime() - now
                if spent > 100_000_000 { logger.warning("the rules loop's housekeeping took \(spent / 1_000_000) ms") }
            }
            // The watchdog is fed only by this loop: if the rules stop running, systemd restarts us.
            if watchdog != nil { SystemdNotify.send("WATCHDOG=1") }
            // Sleep to the next timer (simulated time runs faster), at most 1 s; a reading wakes
            // the loop at once (it may have set a sooner timer).
            let (next, pendingSince) = core.withLock { (engine.nextDeadline($0.state), $0.pendingSince) }
            var sleep = Duration.seconds(1)
            if let pendingSince {
                let age = SystemClock.boottime() &- pendingSince
                sleep = .nanoseconds(Int64(age >= Self.groupCommit ? 0 : Self.groupCommit - age) + 1_000_000)
            }
            if let next {
                let wait = (next - timeline.now()) / timeline.speed
                sleep = max(.milliseconds(5), min(sleep, wait))
            }
            tickLoop.sleep(sleep)
        }
    }

    /// A write of the outbox that hangs, as reported: the technical event, and since when.
    struct HangingWrite {
        var event: EventID?
        var longest: Duration
        var dropped: Int
    }

    /// How long a write may hang before it is reported (`outbox.write_failed` with `hanging`):
    /// alarms go out from memory after one second already, but a card that is only slow must
    /// not raise and clear a technical event every minute. The outbox's open at start is said in
    /// the journal after as long.
    static let hangReportedAfter = Duration.seconds(5)

    /// How long the start waits for the outbox's open before it runs from a stand-in until the
    /// open returns. An outage's backlog on a healthy card with a cold cache opens in a few
    /// seconds (62 MiB read once); a card still busy after ten hangs. Given up on too early, the
    /// cost is a restart onto the outbox when it opens, and the timers saved there a few
    /// seconds late; too late, every alarm waits.
    static let standInAfterHang = Duration.seconds(10)

    /// How long the start waits for the BTHome counters (a small file a card that answers reads
    /// in milliseconds) before it starts without them.
    static let countersReadWithin = Duration.seconds(2)

    /// Raises `outbox.write_failed` (`data.hanging`) when a write has hung for
    /// `hangReportedAfter`, and clears it when the write returns, with how long it hung and how
    /// many state and log events were dropped meanwhile; says both in the journal too.
    func reportHang(_ known: HangingWrite?) -> HangingWrite? {
        let running = outbox.writeRunning
        let dropped = outbox.takeDropped()
        if dropped > 0 { logger.critical("\(dropped) state and log events dropped: a write of the outbox hangs and the queue in memory is full (alarms are kept)") }
        if var known {
            known.dropped += dropped
            if let running, running >= known.longest {
                known.longest = running
                return known
            }
            logger.notice("the outbox writes again: a write hung for \(DurationText.format(known.longest)) or more; what waited for it is stored")
            raise(.outboxWriteFailed, .cleared, correlation: known.event, data: [("hungS", .int(known.longest.nanoseconds / 1_000_000_000)), ("dropped", .int(Int64(known.dropped)))])
            return nil
        }
        guard let running, running >= Self.hangReportedAfter else { return nil }
        let error = "a write has not returned for \(DurationText.format(running)): the disk hangs"
        logger.critical("the outbox cannot write to \(config.outbox.path) (\(error)): the rules go on, events wait in memory and alarms are sent from there; look for I/O errors and timeouts in the kernel log (dmesg) and replace the SD card if it reports them")
        let id = raise(.outboxWriteFailed, data: [("error", .string(error)), ("hanging", .bool(true))])
        return HangingWrite(event: id, longest: running, dropped: dropped)
    }

    /// systemd's STATUS= (`systemctl status vaktpost`), every 10 s: what a technician looks at
    /// first, so an outbox running from a stand-in or from memory is in it.
    func statusLine() -> String {
        // Nil when a write holds the outbox (it hangs); a depth of nil when it cannot be read.
        let seen = try? outbox.with(within: .milliseconds(100)) { o in (depth: try? o.summary().depth, standIn: o.standingIn != nil) }
        let open = core.withLock { $0.openAlarms.count }
        let depth = seen.map { $0.depth.map(String.init) ?? "unreadable" } ?? "busy"
        let place = seen?.standIn == true ? " (STAND-IN on tmpfs: \(openHangs ? "its open hangs" : "it cannot be opened"))"
            : outbox.holdingInMemory.load(ordering: .relaxed) ? " (IN MEMORY: the disk refuses writes)" : ""
        return "\(config.sensors.count) sensors, \(open) open alarms, outbox \(depth)\(place), uplink \(link.map { $0.linkUp ? "up" : "DOWN" } ?? "not configured")"
    }

    func noticed(_ notice: PlatformLink.Notice) {
        switch notice {
        case .acknowledged(let id, let status, let after):
            core.withLock { $0.acknowledgements[id] = (status, after) }
            logger.notice("alarm \(id) \(status.rawValue) by an operator after \(DurationText.format(after))")
        case .escalated(let id, let waited):
            logger.critical("alarm \(id) not acknowledged after \(DurationText.format(waited)): escalated")
        case .linkLost(let since): logger.error("uplink lost since \(since)")
        case .linkRestored(let d): logger.notice("uplink restored after \(DurationText.format(d))")
        case .configRefused(let v, let reason): logger.error("pushed config \(v) refused: \(reason)")
        case .configApplied(let v): logger.notice("config \(v) from the platform applied; restarting to use it\(core.withLock { $0.restartWhenWritten } ? " once the outbox writes again" : "")")
        case .attemptFailed(let reason): logger.warning("a request to the platform failed, retrying: \(reason)")
        case .alarmSentAgain(let after, let status):
            // Said every time: alarms are rare, and each of these is a connection that died, or
            // a platform node that hangs, with an alarm on it.
            logger.warning("an alarm had no answer \(after.nanoseconds / 1_000_000) ms after it went out; sent again on a new connection, the platform answered HTTP \(status), and the first connection is given up (it died without a word, or leads to a platform node that hangs)")
        case .alarmUndelivered(let id, let type, let lastError):
            logger.critical("the platform keeps failing alarm \(id) (\(type)) while it takes the hub's other requests: \(lastError); the alarms behind it go first and it is tried again in turn. Its operators have not seen it: tell the response centre, and the platform's integrator (the eventId is in their logs)")
        case .alarmUndeliveredEnded(let id, let type, let delivered):
            if delivered {
                logger.notice("alarm \(id) (\(type)), reported undelivered, has reached the platform after all")
            } else {
                logger.error("alarm \(id) (\(type)), reported undelivered, was refused by the platform for good (a dead letter: see uplink.rejected); its operators have not seen it")
            }
        case .heartbeat, .command, .clockCorrected: break
        }
    }

    // MARK: HubControl (what the platform may ask)

    public func health() -> HealthSnapshot {
        let (sensors, receivers) = core.withLock { c in (config.sensors.compactMap { c.sensors[$0.id] }, Array(c.receivers.values)) }
        return HealthSnapshot(swVersion: AgentInfo.version, configVersion: fileVersion,
                              uptime: .nanoseconds(Int64(SystemClock.boottime() - startedAt)), sensors: sensors,
                              receivers: receivers.sorted { $0.name < $1.name },
                              diskFreePercent: Files.freeSpace(config.outbox.path)?.percent)
    }

    public func raiseTestAlarm() -> EventID? {
        raise(.testAlarm, data: [("reason", .string("periodic alarm test"))])
    }

    /// A fall the card garbled on its way out is still a fall: made again, at its own time, from
    /// the outbox's columns, which the damage to its bytes did not reach.
    @discardableResult
    public func remakeDamagedAlarm(_ damaged: StoredEvent) -> EventID? {
        let sensor = damaged.sensor.flatMap(SensorID.init).flatMap { sensorConfigs[$0] }
        let remade = core.withLock { c -> EventID? in
            let rule = engine.rule(withOpenAlarm: damaged.eventID, in: c.state)
            guard let id = c.factory.remade(EventType(damaged.type), from: damaged.eventID, at: damaged.occurredAt, sensor: sensor, rule: rule, data: [
                ("remadeFrom", .string(damaged.eventID.description)),
                ("reason", .string("the SD card damaged this alarm's stored bytes; made again from its type, sensor and time, its state taken to be active")),
            ]) else { return nil }
            return commit(&c, force: true) ? id : nil
        }
        if let remade {
            logger.critical("the SD card damaged the stored bytes of alarm \(damaged.eventID) (\(damaged.type), sensor \(damaged.sensor ?? "none")): made again as \(remade) and sent; replace the card")
        } else {
            logger.critical("AN ALARM COULD NOT BE SENT: the SD card damaged the stored bytes of event \(damaged.eventID) (\(damaged.type), sensor \(damaged.sensor ?? "none")), and it could not be made again; check on the resident and replace the card")
        }
        return remade
    }

    /// A pushed config: checked exactly as `vaktpost config check` does (zone file, certificate
    /// and key files included) from a file beside the current one, which then replaces it in one
    /// rename; then the agent restarts itself onto it. A config that fails any check is refused
    /// and the old one stays, so a bad push can never leave the hub unable to start.
    public func applyConfig(_ text: String, version: String) -> String? {
        let candidate = options.configPath + ".pushed"
        do {
            try Files.writeAtomically(candidate, Array(text.utf8), mode: 0o640)
        } catch {
            return "cannot write \(candidate): \(error)"
        }
        let checked = ConfigFile.check(path: candidate)
        guard let pushed = checked.config else {
            Files.remove(candidate)
            let first = checked.report.diagnostics.first { $0.severity == .error }
            return first.map { $0.rendered(file: "pushed config") } ?? "the pushed config is not valid"
        }
        guard pushed.hub.id == config.hub.id else {
            Files.remove(candidate)
            return "the pushed config is for hub \(pushed.hub.id), this hub is \(config.hub.id)"
        }
        guard rename(candidate, options.configPath) == 0 else {
            Files.remove(candidate)
            return "cannot replace \(options.configPath) (errno \(errno))"
        }
        // The stop would wait for a write of the outbox that hangs (the exec, for the open the
        // start gave up on), and the agent would hear nothing until it returns: the restart
        // waits for it instead (`restartIfWritten`), the agent supervising on the config it has.
        // A stop meanwhile starts on the new one.
        if let hanging = outbox.hangingFor != nil ? "a write of the outbox that hangs" : openHangs ? "the outbox's open, which hangs (the agent runs from a stand-in)" : nil {
            core.withLock { $0.restartWhenWritten = true }
            logger.warning("config \(version) is in place; the restart onto it waits for \(hanging) (the agent supervises with the config it has until then)")
            return nil
        }
        restart(onto: "the new configuration")
        return nil
    }

    /// Asks `vaktpost run` to stop and re-execute the agent onto `what` (same pid).
    func restart(onto what: String) {
        core.withLock { $0.restartOnto = what }
        stopWanted.continuation.yield()
    }

    /// `agent.restarted`: the outbox was left without a clean stop (the last run's `boot_id` and
    /// `last_alive` notes say whether the hub restarted under it, and when it was last alive).
    func raiseUncleanStart(_ stop: UncleanStop) {
        let reason = stop.previousBoot.map { $0 == clock.bootID } == false
            ? "the hub restarted (power loss or reboot) while the agent was running"
            : "the agent stopped without shutting down (crash, SIGKILL or the watchdog)"
        raise(.agentRestarted, data: [("reason", .string(reason))] + (stop.lastAlive.map { [("lastAliveAt", .string($0))] } ?? []))
        logger.warning("started after an unclean stop: \(reason)")
    }

    /// The open the start gave up on (`pendingOpen`) has not returned: the card still hangs.
    var openHangs: Bool { pendingOpen.map { !$0.returned.load(ordering: .acquiring) } ?? false }

    /// The outbox's open, given up on at start because the card hung (`pendingOpen`), has
    /// returned: opened, the agent restarts onto it (the restart takes the stand-in in, and the
    /// rules their timers saved there); failed, it runs on from the stand-in, as a start whose
    /// open fails does, and its rules are the ones from then on.
    func restartOntoTheOutbox() {
        guard let late = pendingOpen?.late() else { return }
        let path = config.outbox.path, standIn = Self.standInPath(socket: options.socketPath)
        if let failure = late.failure {
            logger.critical("cannot open the outbox \(path) (\(failure), after \(DurationText.format(late.took))): running on from the stand-in at \(standIn) (memory: lost if the hub loses power); check the kernel log (dmesg) for I/O errors (replace the SD card), then restart the agent")
            outbox.later { o in
                o.standingIn = (path, failure)
                try? o.setNote(Outbox.rulesAfreshNote, nil)
            }
            return
        }
        // What the start would have said of the outbox, had it opened in time.
        if let stop = late.uncleanStop { raiseUncleanStart(stop) }
        logger.notice("the outbox \(path) opened after \(DurationText.format(late.took)): restarting onto it, which takes in what the stand-in \(standIn) holds")
        restart(onto: "the outbox")
    }

    /// A pushed config waits for a write that hangs (`applyConfig`): restarts onto it once the
    /// outbox is free.
    func restartIfWritten() {
        // The flag first: this runs every tick of the rules' loop, the outbox's state only when due.
        guard core.withLock({ $0.restartWhenWritten }), outbox.hangingFor == nil, !openHangs else { return }
        core.withLock { $0.restartWhenWritten = false }
        logger.notice("the outbox answers again: restarting onto the pushed config")
        restart(onto: "the new configuration")
    }

}
