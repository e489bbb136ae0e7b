#if canImport(Glibc)
import Glibc
#endif
import Logging
import Outbox
import Synchronization
import VaktpostCore
import VaktpostPosix

/// The local control socket (`/run/vaktpost/control.sock`): one JSON request line in, one JSON
/// answer out, then the connection closes. No network listener exists.
///
/// Every request, allowed or refused, is written to the audit log with the caller's uid, gid
/// and pid as the kernel reports them (SO_PEERCRED). Callers: root, the agent's own user, and
/// members of its group (the socket's 0660 mode enforces that too; the daemon checks again in
/// case the mode was loosened). `shutdown` and `reset-counter` (which lets one packet through
/// that replay protection would refuse) are for root and the agent's user only.
extension HubDaemon {
    func serveControl() {
        while !controlLoop.isStopped {
            guard let listener = listener.withLock({ $0 }) else { return }
            // 1 s: how long a stop may wait for this loop; shorter only wakes an idle hub more.
            guard let connection = try? listener.accept(milliseconds: 1000) else { continue }
            serve(connection)
        }
    }

    func serve(_ connection: UnixConnection) {
        guard let peer = try? connection.peer() else { return }
        let line = (try? connection.readLine(timeout: .seconds(2))) ?? nil
        let request = line.flatMap { try? JSONValue.parse(bytes: $0) }
        let command = request?["command"]?.stringValue ?? "(unreadable)"
        let answer: JSONValue
        let outcome: String
        if !Self.mayUse(peer, command: command) {
            answer = .object([("error", .string("refused: uid \(peer.uid) may not use the agent's control socket; use sudo or join the vaktpost group"))])
            outcome = "refused"
        } else if let request {
            answer = handle(command, request, caller: "uid \(peer.uid) pid \(peer.pid)")
            outcome = answer["error"] == nil ? "ok" : "error"
        } else {
            answer = .object([("error", .string("send one JSON object per line, e.g. {\"command\":\"status\"}"))])
            outcome = "error"
        }
        audit(peer, command: command, outcome: outcome)
        connection.write(Array((answer.serialized + "\n").utf8))
        if command == "shutdown" && outcome == "ok" { requestShutdown() }
    }

    static func mayUse(_ peer: PeerCredentials, command: String) -> Bool {
        let me = (uid: getuid(), gid: getgid())
        let trusted = peer.uid == 0 || peer.uid == me.uid
        if command == "shutdown" || command == "reset-counter" { return trusted }
        return trusted || peer.gid == me.gid
    }

    func audit(_ peer: PeerCredentials, command: String, outcome: String) {
        let line = JSONValue.object([
            ("time", .string(RFC3339.format(clock.wall(), utcOffsetSeconds: zone.utcOffset(at: clock.wall()), fractionDigits: 3))),
            ("uid", .int(Int64(peer.uid))), ("gid", .int(Int64(peer.gid))), ("pid", .int(Int64(peer.pid))),
            ("command", .string(command)), ("outcome", .string(outcome)),
        ]).serialized
        do {
            try Files.appendLine(options.auditLog, line)
        } catch {
            logger.error("audit log \(options.auditLog): \(error); the entry was: \(line)")
        }
        if outcome == "refused" { logger.warning("control socket: refused \(command) from uid \(peer.uid) pid \(peer.pid)") }
    }

    /// `caller`: who asked, for what the journal says of a change (the audit log has every request).
    func handle(_ command: String, _ request: JSONValue, caller: String = "the control socket") -> JSONValue {
        switch command {
        case "status": return status()
        case "sensors": return .object([("sensors", status()["sensors"] ?? .array([]))])
        case "events":
            let after = UInt64(max(0, request["after"]?.intValue ?? 0))
            let limit = Int(request["limit"]?.intValue ?? 20)
            let events = core.withLock { c in c.recent.filter { $0.seq > after }.suffix(limit).map(\.json) }
            return .object([("events", .array(events))])
        case "test-alarm":
            guard let id = raiseTestAlarm() else { return .object([("error", .string("the outbox did not accept the test event"))]) }
            return .object([("eventId", .string(id.description))])
        case "alarm":
            guard let id = request["eventId"]?.stringValue.flatMap(EventID.init) else { return .object([("error", .string("eventId missing"))]) }
            return alarmProgress(id)
        case "reset-counter":
            guard let sensor = request["sensor"]?.stringValue else { return .object([("error", .string("sensor missing"))]) }
            return resetCounter(sensor, by: "vaktpost reset-counter, \(caller)")
        case "shutdown":
            return .object([("stopping", .bool(true))])
        default:
            return .object([("error", .string("unknown command \(command); known: status, sensors, events, test-alarm, alarm, reset-counter, shutdown"))])
        }
    }

    /// `vaktpost reset-counter`, or the platform's command: forgets a BLE sensor's last
    /// encryption counter, packet id and advertisement, so that the next packet it sends is taken
    /// as a first one. For a sensor whose counter started again (a battery change) or that was
    /// re-keyed, whose packets are refused as replays until then. Editing bthome.json does not do
    /// it while the agent runs: the agent writes back what it holds within 10 s, and when it stops.
    public func resetCounter(_ name: String, by: String) -> JSONValue {
        guard let id = SensorID(name), let sensor = sensorConfigs[id] else {
            return .object([("error", .string("no sensor \(name) is configured; `vaktpost sensors` lists them"))])
        }
        guard let address = sensor.ble?.address else {
            return .object([("error", .string("sensor \(name) is not a BLE sensor: only BTHome sensors keep counters"))])
        }
        let forgotten = core.withLock { $0.ble.forget(address) }
        historyLoop.wake()
        let kept = forgotten.map { h in
            [h.lastCounter.map { "counter \($0)" }, h.lastPacketID.map { "packet id \($0)" }].compactMap { $0 }.joined(separator: ", ")
        }
        logger.notice("sensor \(id) (\(address)): its BTHome history (\(kept.map { $0.isEmpty ? "no counter" : $0 } ?? "none kept")) forgotten, asked by \(by); its next packet is taken as a first one")
        return .object(dropping: [
            ("sensor", .string(id.rawValue)), ("address", .string(address)),
            ("forgot", forgotten.map { BTHomeHistory.json([address: $0])[address] ?? .null }),
        ])
    }

    /// Where a test or alarm is on its way: queued, received by the platform, acknowledged.
    func alarmProgress(_ id: EventID) -> JSONValue {
        if let ack = core.withLock({ $0.acknowledgements[id] }) {
            return .object([("eventId", .string(id.description)), ("status", .string(ack.status.rawValue)),
                            ("acknowledgedAfterMs", .int(ack.after.nanoseconds / 1_000_000))])
        }
        let followed = outbox.followedAlarms().first { $0.event.eventID == id }
        if let followed { return .object([("eventId", .string(id.description)), ("status", .string(followed.status))]) }
        return .object([("eventId", .string(id.description)), ("status", .string("queued"))])
    }

    /// What `vaktpost status` shows, and `check` judges.
    public func status() -> JSONValue {
        let now = clock.now()
        func stamp(_ t: WallTime) -> JSONValue { .string(RFC3339.format(t, utcOffsetSeconds: zone.utcOffset(at: t), fractionDigits: 0)) }
        let health = self.link?.health() ?? health()
        // The depths (the oldest age is the summary's); not waited for while a write hangs.
        let outboxStatus = (try? outbox.with(within: .seconds(1)) { try $0.status(sizes: false) }) ?? nil
        let (open, sensors) = core.withLock { c in (Array(c.openAlarms.values), c.sensors) }
        let sensorList: [JSONValue] = config.sensors.map { s in
            let h = sensors[s.id]
            let fields: [(String, JSONValue?)] = [
                ("id", .string(s.id.rawValue)), ("role", .string(s.role.rawValue)), ("room", .string(s.room.rawValue)),
                ("transport", .string(s.ble != nil ? "ble" : s.enocean != nil ? "enocean" : "-")),
                ("lastSeenAt", h?.lastSeen.map(stamp)), ("silentForS", h?.lastSeen.map { .int((now - $0).nanoseconds / 1_000_000_000) }),
                ("supervisionS", s.supervision.map { .int($0.nanoseconds / 1_000_000_000) }),
                ("batteryPct", h?.batteryPercent.map { .int(Int64($0)) }), ("rssi", h?.rssi.map { .int(Int64($0)) }), ("state", h?.state.map { .string($0) }),
                ("refused", h?.refused.map { $0.json(since: stamp($0.since)) }),
            ]
            return .object(dropping: fields)
        }
        let link = self.link
        let uplink: JSONValue = link.map { l in
            let fields: [(String, JSONValue?)] = [
                ("url", .string(config.platform?.url ?? "")), ("up", .bool(l.linkUp)), ("lastContactAt", l.lastContact.map(stamp)),
                ("heartbeatS", .int(l.heartbeatInterval.nanoseconds / 1_000_000_000)),
            ]
            return .object(dropping: fields)
        } ?? .object([("configured", .bool(false))])
        let outboxJSON: JSONValue = outboxStatus.map { o in
            .object(dropping: [
                ("alarmLane", .int(Int64(o.lanes[.alarm]?.depth ?? 0))), ("bulkLane", .int(Int64(o.lanes[.bulk]?.depth ?? 0))),
                ("awaitingAcknowledgement", .int(Int64(o.awaitingAcknowledgement))), ("deadLetters", .int(Int64(o.deadLetters))),
                ("inMemory", .int(Int64(o.inMemory))), ("oldestAgeS", .int(health.oldestQueued.map { (now - $0).nanoseconds / 1_000_000_000 } ?? 0)),
                ("writeFailure", o.writeFailure.map { .string($0) }),
            ])
        } ?? outbox.writeRunning.map { running in
            .object([("inMemory", .int(Int64(outbox.waitingForWrite))),
                     ("writeFailure", .string("a write has not returned for \(DurationText.format(running)): the disk hangs"))])
        } ?? .null
        let fields: [(String, JSONValue?)] = [
            ("hubId", .string(config.hub.id)), ("version", .string(AgentInfo.version)), ("configVersion", health.configVersion.map { .string($0) }),
            ("uptimeS", .int(health.uptime.nanoseconds / 1_000_000_000)), ("now", stamp(now)), ("simulatedTime", .bool(timeline.isSimulated)),
            ("clockSynced", .bool(clock.synced())), ("uplink", uplink), ("outbox", outboxJSON),
            ("diskFreePct", health.diskFreePercent.map { .double(($0 * 10).rounded() / 10) }),
            ("receivers", .array(health.receivers.map { .object([("name", .string($0.name)), ("present", .bool($0.present))]) })),
            ("sensors", .array(sensorList)), ("openAlarms", .array(open)),
        ]
        return .object(dropping: fields)
    }
}

/// The CLI's side of the control socket.
public enum ControlClient {
    public static func send(_ request: JSONValue, socket: String, timeout: Duration = .seconds(10)) throws -> JSONValue {
        let connection: UnixConnection
        do {
            connection = try UnixConnection.connect(path: socket)
        } catch {
            let hint = error.isNotFound || error.isConnectionRefused
                ? "the agent is not running (systemctl status vaktpost), or --socket points elsewhere"
                : error.isPermissionDenied ? "run with sudo, or add your user to the vaktpost group" : "\(error)"
            throw DaemonError("cannot reach the agent at \(socket): \(hint)")
        }
        connection.write(Array((request.serialized + "\n").utf8))
        let bytes = try connection.readAll(timeout: timeout)
        let answer = try JSONValue.parse(String(String(decoding: bytes, as: UTF8.self).trimmingWhitespace()))
        if let error = answer["error"]?.stringValue { throw DaemonError(error) }
        return answer
    }
}
