import SQLiteStore
import VaktpostCore

/// The operator's side of the reference receiver, on a separate plain-HTTP port on loopback: the
/// page support staff look at, its JSON equivalent, operator actions on alarms, commands and
/// configs for hubs, and the fault switches at run time. Never on the hubs' mTLS port.
extension Platform {
    public func admin(_ request: ReceiverRequest) -> ReceiverResponse {
        let p = request.path.split(separator: "/").map(String.init)
        do {
            switch (request.method, p.count, p.first) {
            case ("GET", 0, _): return ReceiverResponse(status: 200, headers: ["Content-Type": "text/html; charset=utf-8"], body: Array(try page().utf8))
            case ("GET", 2, "api") where p[1] == "hubs": return .json(200, .object([("hubs", .array(try hubs()))]))
            case ("GET", 2, "api") where p[1] == "arrivals": return .json(200, try arrivals(hub: request.query["hub"]))
            case ("POST", 2, "api") where p[1] == "faults": return try setFaults(request.body)
            case ("GET", 2, "api") where p[1] == "faults": return .json(200, faultsJSON())
            case ("GET", 4, "api") where p[1] == "hubs" && p[3] == "events":
                return .json(200, .object([("events", .array(try events(hub: p[2], limit: Int(request.query["limit"] ?? "") ?? 50)))]))
            case ("POST", 6, "api") where p[1] == "hubs" && p[3] == "alarms": return try operate(hub: p[2], eventID: p[4], action: p[5])
            case ("POST", 4, "api") where p[1] == "hubs" && p[3] == "commands": return try queueCommand(hub: p[2], request.body)
            case ("GET", 4, "api") where p[1] == "hubs" && p[3] == "commands": return .json(200, .object([("commands", .array(try commandList(hub: p[2])))]))
            case ("PUT", 4, "api") where p[1] == "hubs" && p[3] == "config": return try putConfig(hub: p[2], request.body)
            case ("PUT", 4, "api") where p[1] == "hubs" && p[3] == "heartbeat-interval": return try putInterval(hub: p[2], request.body)
            default: return .problem(404, "Not Found", "no \(request.method) \(request.path); see vaktpost-receiver --help for the admin API")
            }
        } catch {
            return .problem(500, "Internal Server Error", "\(error)")
        }
    }

    /// `GET` or `POST /api/faults`: the one part of the admin API that leaves the store alone.
    public static func isFaultSwitch(_ request: ReceiverRequest) -> Bool {
        request.path == "/api/faults" && (request.method == "GET" || request.method == "POST")
    }

    // MARK: Reading

    func hubs() throws -> [JSONValue] {
        try store.with { db in
            // Every hub heard from, by heartbeat or by event.
            let s = try db.prepare("""
                SELECT h.hub_id, h.last_heartbeat_at, h.last_heartbeat, coalesce(h.heartbeats, 0), h.heartbeat_sec,
                       (SELECT count(*) FROM events e WHERE e.hub_id = h.hub_id),
                       (SELECT max(received_at) FROM events e WHERE e.hub_id = h.hub_id)
                FROM (SELECT hub_id, last_heartbeat_at, last_heartbeat, heartbeats, heartbeat_sec FROM hubs
                      UNION SELECT DISTINCT hub_id, NULL, NULL, 0, NULL FROM events WHERE hub_id NOT IN (SELECT hub_id FROM hubs)) h
                ORDER BY h.hub_id
                """)
            var out: [JSONValue] = []
            while try s.step() {
                let hub = s.text(0)!
                let interval = s.isNull(4) ? options.heartbeatSeconds ?? 60 : Int(s.int64(4))
                let last = s.isNull(1) ? nil : WallTime(nanosecondsSinceEpoch: s.int64(1) * 1_000_000)
                let heartbeat = s.text(2).flatMap { try? JSONValue.parse($0) }
                // The spec's rule: offline after three missed intervals.
                let online = last.map { now() - $0 < .seconds(3 * interval) } ?? false
                let open = try openAlarms(hub: hub, db: db)
                out.append(.object(dropping: [
                    ("hubId", .string(hub)), ("online", .bool(online)), ("lastHeartbeatAt", last.map { .string(stamp($0)) }),
                    ("heartbeats", .int(s.int64(3))), ("heartbeatSec", .int(Int64(interval))),
                    ("events", .int(s.int64(5))), ("openAlarms", .array(open)),
                    ("health", heartbeat.map { hb in .object(dropping: [
                        ("swVersion", hb["swVersion"]), ("configVersion", hb["configVersion"]), ("configPending", hb["configPending"]), ("uptimeS", hb["uptimeS"]),
                        ("outbox", hb["outbox"]), ("clock", hb["clock"]), ("sensors", hb["sensors"]), ("diskFreePct", hb["diskFreePct"]),
                    ]) }),
                ]))
            }
            return out
        }
    }

    func openAlarms(hub: String, db: Connection) throws -> [JSONValue] {
        let s = try db.prepare("""
            SELECT a.event_id, e.type, e.occurred_at, e.body FROM alarms a JOIN events e ON e.hub_id = a.hub_id AND e.event_id = a.event_id
            WHERE a.hub_id = ? AND a.closed_at IS NULL AND e.class != 'test' AND e.state = 'active' ORDER BY e.seq
            """).bind(.text(hub))
        var out: [JSONValue] = []
        while try s.step() {
            guard let record = try alarmRecord(hub: hub, eventID: s.text(0)!, db: db), record.closedAt == nil else { continue }
            let body = try? JSONValue.parse(s.text(3)!)
            out.append(.object(dropping: [("eventId", .string(s.text(0)!)), ("type", .string(s.text(1)!)), ("occurredAt", .string(s.text(2)!)),
                                          ("status", .string(record.status)), ("location", body?["location"]?["text"])]))
        }
        return out
    }

    func events(hub: String, limit: Int) throws -> [JSONValue] {
        try store.with { db in
            let s = try db.prepare("SELECT body, lane, received_at, event_id FROM events WHERE hub_id = ? ORDER BY arrival DESC LIMIT ?").bind(.text(hub), .integer(Int64(limit)))
            var out: [JSONValue] = []
            while try s.step() {
                // An alarm's handling status beside it, as the operator's screen would show.
                let status = s.text(1) == "alarm" ? try alarmRecord(hub: hub, eventID: s.text(3)!, db: db)?.json() : nil
                out.append(.object(dropping: [
                    ("lane", .string(s.text(1)!)), ("receivedAt", .string(stamp(WallTime(nanosecondsSinceEpoch: s.int64(2) * 1_000_000)))),
                    ("receivedAtMs", .int(s.int64(2))), ("handling", status), ("event", (try? JSONValue.parse(s.text(0)!)) ?? .null),
                ]))
            }
            return out
        }
    }

    /// Every stored event in arrival order, and how many repeats were answered as duplicates:
    /// what the tests and the demo compare against what the hub sent.
    func arrivals(hub: String?) throws -> JSONValue {
        try store.with { db in
            let s = try db.prepare("SELECT hub_id, event_id, seq, class, type, state, lane, received_at FROM events WHERE ?1 IS NULL OR hub_id = ?1 ORDER BY arrival")
                .bind(hub.map { .text($0) } ?? .null)
            var out: [JSONValue] = []
            while try s.step() {
                out.append(.object([("hubId", .string(s.text(0)!)), ("eventId", .string(s.text(1)!)), ("seq", .int(s.int64(2))), ("class", .string(s.text(3)!)),
                                    ("type", .string(s.text(4)!)), ("state", .string(s.text(5)!)), ("lane", .string(s.text(6)!)), ("receivedAtMs", .int(s.int64(7)))]))
            }
            let duplicates = try db.integer("SELECT value FROM counters WHERE name = 'duplicates'") ?? 0
            let heartbeats = try db.integer("SELECT coalesce(sum(heartbeats), 0) FROM hubs") ?? 0
            return .object([("arrivals", .array(out)), ("duplicates", .int(duplicates)), ("heartbeats", .int(heartbeats))])
        }
    }

    func commandList(hub: String) throws -> [JSONValue] {
        try store.with { db in
            let s = try db.prepare("SELECT command_id, command_seq, kind, args, result_status, result_detail FROM commands WHERE hub_id = ? ORDER BY command_seq").bind(.text(hub))
            var out: [JSONValue] = []
            while try s.step() {
                out.append(.object(dropping: [
                    ("commandId", .string(s.text(0)!)), ("commandSeq", .int(s.int64(1))), ("kind", .string(s.text(2)!)),
                    ("args", try? JSONValue.parse(s.text(3)!)), ("resultStatus", s.text(4).map { .string($0) }),
                    ("resultDetail", s.text(5).flatMap { try? JSONValue.parse($0) }),
                ]))
            }
            return out
        }
    }

    // MARK: Acting

    func operate(hub: String, eventID: String, action: String) throws -> ReceiverResponse {
        let column: String
        switch action {
        case "present": column = "presented_at"
        case "acknowledge": column = "acknowledged_at"
        case "close": column = "closed_at"
        default: return .problem(404, "Not Found", "actions are present, acknowledge and close")
        }
        let record: AlarmRecord? = try store.with { db in
            // Acknowledging implies presented; closing implies both.
            let stamps = ["presented_at", "acknowledged_at", "closed_at"]
            for c in stamps.prefix(through: stamps.firstIndex(of: column)!) {
                try db.prepare("UPDATE alarms SET \(c) = coalesce(\(c), ?) WHERE hub_id = ? AND event_id = ?")
                    .bind(.integer(now().millisecondsSinceEpoch), .text(hub), .text(eventID)).run()
            }
            return try alarmRecord(hub: hub, eventID: eventID, db: db)
        }
        guard let record else { return .problem(404, "Not Found", "no alarm \(eventID) from hub \(hub)") }
        return .json(200, record.json())
    }

    func queueCommand(hub: String, _ body: [UInt8]) throws -> ReceiverResponse {
        guard let json = parseJSON(body), let kind = json["kind"]?.stringValue,
              ["test-alarm", "diagnostics", "set-heartbeat", "reload-config", "reset-counter"].contains(kind) else {
            return .problem(400, "Bad Request", "send {\"kind\": \"test-alarm|diagnostics|set-heartbeat|reload-config|reset-counter\", \"args\": {...}}")
        }
        let command: JSONValue = try store.with { db in
            try db.transaction {
                try db.prepare("INSERT INTO hubs(hub_id, command_seq) VALUES(?, 1) ON CONFLICT(hub_id) DO UPDATE SET command_seq = command_seq + 1").bind(.text(hub)).run()
                let seq = try db.prepare("SELECT command_seq FROM hubs WHERE hub_id = ?").bind(.text(hub))
                _ = try seq.step()
                let n = seq.int64(0)
                seq.reset()
                let id = json["commandId"]?.stringValue ?? "cmd-\(n)"
                let args = json["args"] ?? .object([])
                try db.prepare("INSERT INTO commands(hub_id, command_seq, command_id, kind, args, created_at) VALUES(?,?,?,?,?,?)")
                    .bind(.text(hub), .integer(n), .text(id), .text(kind), .text(args.serialized), .integer(now().millisecondsSinceEpoch)).run()
                return .object([("commandId", .string(id)), ("commandSeq", .int(n)), ("kind", .string(kind)), ("args", args)])
            }
        }
        return .json(201, command)
    }

    func putConfig(hub: String, _ body: [UInt8]) throws -> ReceiverResponse {
        // The ETag is the content's hash, so the same file pushed twice is not a change.
        let etag = "\"" + Hex.string(withUnsafeBytes(of: ContentHash.fnv1a(body).bigEndian) { Array($0) }) + "\""
        try store.with { db in
            try db.prepare("INSERT INTO hubs(hub_id, config, config_etag) VALUES(?,?,?) ON CONFLICT(hub_id) DO UPDATE SET config = excluded.config, config_etag = excluded.config_etag")
                .bind(.text(hub), .text(String(decoding: body, as: UTF8.self)), .text(etag)).run()
        }
        return .json(200, .object([("hubId", .string(hub)), ("etag", .string(etag))]))
    }

    func putInterval(hub: String, _ body: [UInt8]) throws -> ReceiverResponse {
        guard let seconds = parseJSON(body)?["seconds"]?.intValue, (30...3600).contains(seconds) else {
            return .problem(400, "Bad Request", "send {\"seconds\": N} with N in 30...3600")
        }
        try store.with { db in
            try db.prepare("INSERT INTO hubs(hub_id, heartbeat_sec) VALUES(?,?) ON CONFLICT(hub_id) DO UPDATE SET heartbeat_sec = excluded.heartbeat_sec")
                .bind(.text(hub), .integer(seconds)).run()
        }
        return .json(200, .object([("hubId", .string(hub)), ("nextHeartbeatSec", .int(seconds))]))
    }

    func faultsJSON() -> JSONValue {
        let f = faults
        let down = f.downUntil.map { max(0, ($0 - now()).nanoseconds / 1_000_000_000) } ?? 0
        return .object(dropping: [
            ("downForSec", .int(down)), ("failRate", .double(f.failRate)), ("delayMs", .int(f.delay.nanoseconds / 1_000_000)),
            ("retryAfterSec", f.retryAfterSeconds.map { .int(Int64($0)) }), ("failStatus", .int(Int64(f.failStatus))), ("scope", .string(f.scope.rawValue)),
            ("dropEvery", .int(Int64(f.dropEvery))), ("dropped", .int(Int64(droppedConnections))),
            ("hangKept", .bool(f.hangKept)), ("hung", .int(Int64(hungRequests))), ("breakOnType", f.breakOnType.map { .string($0) }),
            ("breakStatus", .int(Int64(f.breakStatus))), ("hangOnType", f.hangOnType.map { .string($0) }), ("broken", .int(Int64(brokenAlarms))),
        ])
    }

    /// `{"downForSec": 30, "failRate": 0.2, "delayMs": 100, "retryAfterSec": 2, "failStatus": 429, "dropEvery": 50, "hangKept": true,
    /// "breakOnType": "fall.detected", "breakStatus": 422, "hangOnType": "fall.detected"}`; absent fields stay ("breakOnType" or
    /// "hangOnType": null or "" ends that fault).
    func setFaults(_ body: [UInt8]) throws -> ReceiverResponse {
        guard let json = parseJSON(body), case .object = json else { return .problem(400, "Bad Request", "send a JSON object of fault switches") }
        var f = faults
        if let s = json["downForSec"]?.intValue { f.downUntil = s > 0 ? now() + .seconds(s) : nil }
        if let r = json["failRate"], case .double(let d) = r { f.failRate = d } else if let r = json["failRate"]?.intValue { f.failRate = Double(r) }
        if let ms = json["delayMs"]?.intValue { f.delay = .milliseconds(ms) }
        if let ra = json["retryAfterSec"] { f.retryAfterSeconds = ra.intValue.map { Int($0) } }
        if let st = json["failStatus"]?.intValue { f.failStatus = Int(st) }
        if let st = json["breakStatus"] {
            guard let status = st.intValue, (400...599).contains(status) else {
                return .problem(400, "Bad Request", "breakStatus is an HTTP status from 400 to 599 (500: retried; 400 or 422: refused for good)")
            }
            f.breakStatus = Int(status)
        }
        if let n = json["dropEvery"]?.intValue {
            guard n >= 0 else { return .problem(400, "Bad Request", "dropEvery is a count of requests, 0 for never") }
            f.dropEvery = Int(n)
        }
        if let h = json["hangKept"] {
            guard case .bool(let hang) = h else { return .problem(400, "Bad Request", "hangKept is true or false") }
            f.hangKept = hang
        }
        for (name, path) in [("breakOnType", \Faults.breakOnType), ("hangOnType", \Faults.hangOnType)] {
            guard let b = json[name] else { continue }
            switch b {
            case .null: f[keyPath: path] = nil
            case .string(let t): f[keyPath: path] = t.isEmpty ? nil : t
            default: return .problem(400, "Bad Request", "\(name) is an event type (\"fall.detected\"), or null to end it")
            }
        }
        if let sc = json["scope"]?.stringValue {
            guard let scope = Faults.Scope(rawValue: sc) else { return .problem(400, "Bad Request", "scope is all, batches or alarms") }
            f.scope = scope
        }
        faults = f
        return .json(200, faultsJSON())
    }
}
