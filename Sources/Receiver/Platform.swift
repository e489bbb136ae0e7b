import SQLiteStore
import Synchronization
import VaktpostCore

/// Switches that make the receiver misbehave on purpose, for tests and the demo: the hub must
/// survive every one of them without losing or duplicating an event.
public struct Faults: Sendable, Equatable {
    /// Answer every hub request with `failStatus` until then.
    public var downUntil: WallTime?
    /// The share of hub requests (0...1) answered with `failStatus` at random.
    public var failRate: Double
    /// Wait this long before answering each hub request.
    public var delay: Duration
    /// Sent as `Retry-After` (seconds) with every fault answer; none when nil.
    public var retryAfterSeconds: Int?
    /// 503 by default; 429 and 500 are the other useful choices (422 makes the hub dead-letter).
    /// 200 answers with an HTML page instead of JSON, as a captive portal or a broken proxy does.
    public var failStatus: Int
    /// Which requests the faults hit.
    public var scope: Scope
    /// Close the connection under every Nth hub request, unanswered, as a load balancer's
    /// keep-alive timeout or a restart does to a request racing it; 0: never.
    public var dropEvery: Int
    /// Never answer a request that comes on a connection which has carried one before (it waits
    /// until the hub closes the connection); a new connection's first request is answered. What
    /// a hub sees of a connection that died without a word, or of a load balancer that keeps
    /// sending a kept connection to a node that hangs.
    public var hangKept: Bool
    /// Answer every `POST .../alarms` of an event of this type with `breakStatus`, whatever else
    /// holds: a platform whose handler breaks on one kind of alarm while it takes everything else.
    public var breakOnType: String?
    /// 500 (a handler that throws, retried), or a 4xx (a platform refusing the alarm for good).
    public var breakStatus = 500
    /// Never answer a `POST .../alarms` of an event of this type (it waits until the hub gives
    /// the request up), while answering everything else: a platform whose handler for one kind
    /// of alarm waits on something that never comes.
    public var hangOnType: String?

    public enum Scope: String, Sendable, Equatable {
        case all
        /// Only `POST .../events:batch`.
        case batches
        /// Only `POST .../alarms`.
        case alarms
    }

    public init(downUntil: WallTime? = nil, failRate: Double = 0, delay: Duration = .zero, retryAfterSeconds: Int? = nil, failStatus: Int = 503, scope: Scope = .all, dropEvery: Int = 0, hangKept: Bool = false, breakOnType: String? = nil, hangOnType: String? = nil) {
        self.hangKept = hangKept
        self.hangOnType = hangOnType
        self.breakOnType = breakOnType
        self.scope = scope
        self.dropEvery = dropEvery
        self.downUntil = downUntil
        self.failRate = failRate
        self.delay = delay
        self.retryAfterSeconds = retryAfterSeconds
        self.failStatus = failStatus
    }
}

/// The reference response platform: docs/openapi.yaml's server side, over a `ReceiverStore`.
public final class Platform: Sendable {
    public struct Options: Sendable {
        /// The interval every hub is told to use, unless set per hub; nil: hubs keep their own.
        public var heartbeatSeconds: Int?
        /// When set, alarms are `presented` at once and `acknowledged` this long after receipt,
        /// as if an operator took each one; otherwise an operator does it on the page or the API.
        public var acknowledgeAfter: Duration?
        /// How long a batch's Idempotency-Key and its answer are kept (the protocol asks for at
        /// least 24 hours). Each holds the batch's bytes, so without an end they doubled the
        /// store. A retry after that is answered per event, as duplicates: nothing is stored twice.
        public var idempotencyRetention: Duration

        public init(heartbeatSeconds: Int? = nil, acknowledgeAfter: Duration? = nil, idempotencyRetention: Duration = .seconds(7 * 86_400)) {
            self.heartbeatSeconds = heartbeatSeconds
            self.acknowledgeAfter = acknowledgeAfter
            self.idempotencyRetention = idempotencyRetention
        }
    }

    let store: ReceiverStore
    let options: Options
    let now: @Sendable () -> WallTime
    let faultState: Mutex<Faults>
    /// Hub requests within the faults' scope so far, for `dropEvery`, and how many it dropped.
    let dropCounts = Mutex((requests: 0, dropped: 0))
    /// The connections ("ADDRESS:PORT") that have carried a hub request, for `hangKept`, and
    /// how many requests it has left unanswered.
    let connectionsSeen = Mutex((peers: Set<String>(), hung: 0))

    public init(store: ReceiverStore, options: Options = .init(), faults: Faults = .init(), now: @escaping @Sendable () -> WallTime) {
        self.store = store
        self.options = options
        self.faultState = Mutex(faults)
        self.now = now
    }

    public var faults: Faults {
        get { faultState.withLock { $0 } }
        set { faultState.withLock { $0 = newValue } }
    }

    func stamp(_ t: WallTime) -> String { RFC3339.format(t, utcOffsetSeconds: 0, fractionDigits: 3) }

    // MARK: The hub API

    /// Answers one request under `/v1/hubs/{hubId}/...`.
    public func handle(_ request: ReceiverRequest) -> ReceiverOutcome {
        if request.method == "GET" && request.path == "/v1/whoami" { return injectedFault(for: nil, peer: request.peer) ?? .respond(whoami(request)) }
        let parts = request.path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 5, parts[0] == "", parts[1] == "v1", parts[2] == "hubs" else {
            return .respond(.problem(404, "Not Found", "no such resource: \(request.path); the hub API is under /v1/hubs/{hubId}/"))
        }
        let hub = parts[3]
        let rest = Array(parts[4...])
        if let fault = injectedFault(for: request.method == "POST" ? rest.first : nil, peer: request.peer) { return fault }
        let f = faults
        if request.method == "POST", rest == ["alarms"], f.breakOnType != nil || f.hangOnType != nil,
           let type = parseJSON(request.body)?["type"]?.stringValue, type == f.breakOnType || type == f.hangOnType {
            brokenAnswers.add(1, ordering: .relaxed)
            guard type == f.breakOnType else { return .hang }
            let title = f.breakStatus == 500 ? "Internal Server Error" : f.breakStatus < 500 ? "Refused" : "Failed"
            return .respond(.problem(f.breakStatus, title, "fault injected by vaktpost-receiver (breakOnType): this platform breaks on \(type) alarms"))
        }
        guard !request.certificateHubs.isEmpty else {
            return .respond(.problem(401, "Unauthorized", "no client certificate: the hub must present its own certificate (client_cert, client_key)"))
        }
        guard request.certificateHubs.contains(hub) else {
            return .respond(.problem(403, "Forbidden", "the client certificate is for \(request.certificateHubs.joined(separator: ", ")), not for hub \(hub): check [hub] id and the certificate"))
        }
        do {
            switch (request.method, rest.count, rest.first) {
            case ("POST", 1, "events:batch"): return .respond(try batch(hub: hub, request))
            case ("POST", 1, "events:ndjson"): return .respond(try lines(hub: hub, request))
            case ("POST", 1, "alarms"): return .respond(try alarm(hub: hub, request))
            case ("GET", 2, "alarms"): return .respond(try alarmStatus(hub: hub, eventID: rest[1]))
            case ("POST", 1, "heartbeat"): return .respond(try heartbeat(hub: hub, request))
            case ("GET", 1, "config"): return .respond(try config(hub: hub, ifNoneMatch: request.headers["if-none-match"]))
            case ("GET", 1, "commands"): return try commands(hub: hub, request)
            case ("POST", 3, "commands") where rest[2] == "result": return .respond(try commandResult(hub: hub, commandID: rest[1], request))
            default:
                return .respond(.problem(404, "Not Found", "no \(request.method) \(request.path) in docs/openapi.yaml"))
            }
        } catch {
            // The store failed: the hub must retry, and nothing it sent may count as stored.
            return .respond(.problem(503, "Service Unavailable", "the platform could not store this: \(error)", headers: ["Retry-After": "5"]))
        }
    }

    /// Connections closed under a request by `dropEvery` since the start.
    var droppedConnections: Int { dropCounts.withLock { $0.dropped } }

    /// The configured delay before answering a hub request.
    public var delay: Duration { faults.delay }

    /// Alarms answered 500 by `breakOnType`, or left unanswered by `hangOnType`, since the start.
    let brokenAnswers = Atomic<Int>(0)
    var brokenAlarms: Int { brokenAnswers.load(ordering: .relaxed) }

    /// Requests left unanswered by `hangKept` since the start.
    var hungRequests: Int { connectionsSeen.withLock { $0.hung } }

    func injectedFault(for post: String?, peer: String?) -> ReceiverOutcome? {
        let f = faults
        switch f.scope {
        case .all: break
        case .batches: guard post == "events:batch" || post == "events:ndjson" else { return nil }
        case .alarms: guard post == "alarms" else { return nil }
        }
        if f.hangKept, let peer {
            let kept = connectionsSeen.withLock { seen in
                if seen.peers.count > 10_000 { seen.peers.removeAll() }  // a long run's closed connections
                let kept = !seen.peers.insert(peer).inserted
                if kept { seen.hung += 1 }
                return kept
            }
            if kept { return .hang }
        }
        if f.dropEvery > 0 {
            let drop = dropCounts.withLock {
                $0.requests += 1
                if $0.requests % f.dropEvery == 0 { $0.dropped += 1; return true }
                return false
            }
            if drop { return .dropConnection }
        }
        var failing = f.downUntil.map { now() < $0 } ?? false
        if !failing, f.failRate > 0 { failing = Double.random(in: 0..<1) < f.failRate }
        guard failing else { return nil }
        var headers = f.retryAfterSeconds.map { ["Retry-After": String($0)] } ?? [:]
        if f.failStatus == 200 {
            headers["Content-Type"] = "text/html"
            return .respond(ReceiverResponse(status: 200, headers: headers, body: Array("<html><body>Please log in to continue</body></html>".utf8)))
        }
        let title = [429: "Too Many Requests", 503: "Service Unavailable", 422: "Unprocessable Content"][f.failStatus] ?? "Internal Server Error"
        return .respond(.problem(f.failStatus, title, "fault injected by vaktpost-receiver (--down-for / --fail-rate): retry later", headers: headers))
    }

    /// What the platform sees of the caller: which hub its certificate names, from where, over
    /// which HTTP version. For a technician checking a hub's certificate with curl, and for tests.
    func whoami(_ request: ReceiverRequest) -> ReceiverResponse {
        .json(200, .object(dropping: [
            ("certificateNames", .array(request.certificateHubs.map { .string($0) })), ("peer", request.peer.map { .string($0) }),
            ("httpVersion", request.httpVersion.map { .string($0) }), ("idempotencyKey", request.headers["idempotency-key"].map { .string($0) }),
            ("bodyLength", .int(Int64(request.body.count))),
        ]))
    }

    func parseJSON(_ body: [UInt8]) -> JSONValue? {
        try? JSONValue.parse(bytes: body)
    }

    static let classes: Set<String> = ["alarm", "technical", "state", "test", "log"]
    static let states: Set<String> = ["active", "cleared", "cancelled", "update"]

    /// Why an event does not match the Event schema's essentials; nil when it does.
    static func problem(in event: JSONValue) -> String? {
        guard case .object = event else { return "an event must be a JSON object" }
        guard event["schema"]?.stringValue == "hub-event/1" else { return "schema must be \"hub-event/1\"" }
        guard let id = event["eventId"]?.stringValue, EventID(id) != nil else { return "eventId must be a UUID" }
        guard let seq = event["seq"]?.intValue, seq >= 1 else { return "seq must be an integer >= 1" }
        guard let c = event["class"]?.stringValue, classes.contains(c) else { return "class must be one of \(classes.sorted())" }
        guard let t = event["type"]?.stringValue, t.contains("."), !t.hasPrefix("."), !t.hasSuffix(".") else { return "type must look like area.what" }
        guard let s = event["state"]?.stringValue, states.contains(s) else { return "state must be one of \(states.sorted())" }
        guard let at = event["occurredAt"]?.stringValue, RFC3339.parse(at) != nil else { return "occurredAt must be an RFC 3339 time" }
        guard event["bootId"]?.stringValue != nil, event["clock"]?["boottimeNs"]?.intValue != nil else { return "bootId and clock.boottimeNs are required" }
        return nil
    }

    /// Stores an event once; false when (hub, eventId) was already there.
    func insert(_ event: JSONValue, hub: String, lane: String, db: Connection) throws -> Bool {
        try db.cached("""
            INSERT INTO events(hub_id, event_id, seq, class, type, state, occurred_at, lane, received_at, body)
            VALUES(?,?,?,?,?,?,?,?,?,?) ON CONFLICT(hub_id, event_id) DO NOTHING
            """).bind(.text(hub), .text(event["eventId"]!.stringValue!), .integer(event["seq"]!.intValue!), .text(event["class"]!.stringValue!),
                      .text(event["type"]!.stringValue!), .text(event["state"]!.stringValue!), .text(event["occurredAt"]!.stringValue!),
                      .text(lane), .integer(now().millisecondsSinceEpoch), .text(event.serialized)).run()
        if db.changes == 1 { return true }
        // In total (the page) and per hub (a benchmark comparing two forwarders in one run).
        for name in ["duplicates", "duplicates/" + hub] {
            try db.cached("INSERT INTO counters(name, value) VALUES(?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1").bind(.text(name)).run()
        }
        return false
    }

    func batch(hub: String, _ request: ReceiverRequest) throws -> ReceiverResponse {
        guard let key = request.headers["idempotency-key"], !key.isEmpty else {
            return .problem(400, "Bad Request", "Idempotency-Key is required on events:batch (the batchId, quoted)")
        }
        guard request.body.count <= 256 << 10 else { return .problem(400, "Bad Request", "a batch is at most 256 KiB") }
        guard let json = parseJSON(request.body), case .array(let events)? = json["events"], json["batchId"]?.stringValue != nil else {
            return .problem(400, "Bad Request", "the body is not an EventBatch: {hubId, batchId, sentAt, bootId, events: [...]}")
        }
        guard (1...100).contains(events.count) else { return .problem(400, "Bad Request", "a batch has 1-100 events, this one \(events.count)") }
        return try store.with { db in
            try db.transaction {
                let expired = now() - options.idempotencyRetention
                try db.cached("DELETE FROM idempotency WHERE created_at < ?").bind(.integer(expired.millisecondsSinceEpoch)).run()
                // The same key again: the same answer if it is the same request, else a hub bug.
                let known = try db.cached("SELECT request, status, response FROM idempotency WHERE hub_id = ? AND key = ?").bind(.text(hub), .text(key))
                defer { known.reset() }
                if try known.step() {
                    guard known.blob(0) == request.body else {
                        return .problem(422, "Unprocessable Content", "Idempotency-Key \(key) was used before with a different body; a retry must send the same bytes")
                    }
                    return .json(Int(known.int64(1)), (try? JSONValue.parse(bytes: known.blob(2))) ?? .null)
                }
                var results: [JSONValue] = []
                for event in events {
                    let id = event["eventId"]?.stringValue ?? ""
                    if let why = Self.problem(in: event) {
                        results.append(.object([("eventId", .string(id)), ("status", .string("rejected")),
                                                ("problem", .object([("title", .string("Invalid event")), ("detail", .string(why))]))]))
                        continue
                    }
                    let fresh = try insert(event, hub: hub, lane: "batch", db: db)
                    results.append(.object([("eventId", .string(id)), ("status", .string(fresh ? "accepted" : "duplicate"))]))
                }
                let answer = JSONValue.object([("results", .array(results)), ("serverTime", .string(stamp(now())))])
                try db.cached("INSERT INTO idempotency(hub_id, key, request, status, response, created_at) VALUES(?,?,?,?,?,?)")
                    .bind(.text(hub), .text(key), .blob(request.body), .integer(200), .blob(answer.serializedBytes), .integer(now().millisecondsSinceEpoch)).run()
                return .json(200, answer)
            }
        }
    }

    /// Events as newline-delimited JSON, one hub-event/1 per line: for a general log forwarder
    /// (syslog-ng in Benchmarks/peer_syslogng.py) that cannot give each request its own
    /// Idempotency-Key. Each event is still stored once by eventId; a resent request is answered
    /// with its events as duplicates. Not part of the hub protocol: hubs use events:batch.
    func lines(hub: String, _ request: ReceiverRequest) throws -> ReceiverResponse {
        guard request.body.count <= 1 << 20 else { return .problem(400, "Bad Request", "at most 1 MiB of lines per request") }
        let text = String(decoding: request.body, as: UTF8.self)
        var events: [JSONValue] = []
        for line in text.split(whereSeparator: \.isNewline) where !line.allSatisfy(\.isWhitespace) {
            guard let event = try? JSONValue.parse(String(line)) else {
                return .problem(400, "Bad Request", "line \(events.count + 1) is not JSON: send one hub-event/1 object per line")
            }
            events.append(event)
        }
        return try store.with { db in
            try db.transaction {
                var counts = (accepted: 0, duplicate: 0, rejected: 0)
                for event in events {
                    if Self.problem(in: event) != nil { counts.rejected += 1; continue }
                    if try insert(event, hub: hub, lane: "lines", db: db) { counts.accepted += 1 } else { counts.duplicate += 1 }
                }
                return .json(200, .object([("accepted", .int(Int64(counts.accepted))), ("duplicate", .int(Int64(counts.duplicate))),
                                           ("rejected", .int(Int64(counts.rejected))), ("serverTime", .string(stamp(now())))]))
            }
        }
    }

    func alarm(hub: String, _ request: ReceiverRequest) throws -> ReceiverResponse {
        guard let event = parseJSON(request.body) else { return .problem(400, "Bad Request", "the body is not JSON") }
        if let why = Self.problem(in: event) { return .problem(422, "Unprocessable Content", why) }
        let id = event["eventId"]!.stringValue!
        let record: AlarmRecord = try store.with { db in
            try db.transaction {
                _ = try insert(event, hub: hub, lane: "alarm", db: db)
                try db.cached("INSERT INTO alarms(hub_id, event_id, received_at) VALUES(?,?,?) ON CONFLICT DO NOTHING")
                    .bind(.text(hub), .text(id), .integer(now().millisecondsSinceEpoch)).run()
                return try alarmRecord(hub: hub, eventID: id, db: db)!
            }
        }
        return .json(202, record.json(), headers: ["Location": "/v1/hubs/\(hub)/alarms/\(id)"])
    }

    func alarmRecord(hub: String, eventID: String, db: Connection) throws -> AlarmRecord? {
        let s = try db.cached("SELECT received_at, presented_at, acknowledged_at, closed_at FROM alarms WHERE hub_id = ? AND event_id = ?").bind(.text(hub), .text(eventID))
        defer { s.reset() }
        guard try s.step() else { return nil }
        func t(_ c: Int32) -> WallTime? { s.isNull(c) ? nil : WallTime(nanosecondsSinceEpoch: s.int64(c) * 1_000_000) }
        var record = AlarmRecord(eventID: eventID, receivedAt: t(0)!, presentedAt: t(1), acknowledgedAt: t(2), closedAt: t(3))
        // The automatic operator (--ack-after): presented at once, acknowledged after the delay.
        if let after = options.acknowledgeAfter, record.acknowledgedAt == nil, now() >= record.receivedAt + after {
            record.presentedAt = record.presentedAt ?? record.receivedAt
            record.acknowledgedAt = record.receivedAt + after
        }
        return record
    }

    func alarmStatus(hub: String, eventID: String) throws -> ReceiverResponse {
        guard let record = try store.with({ try alarmRecord(hub: hub, eventID: eventID, db: $0) }) else {
            return .problem(404, "Not Found", "no alarm \(eventID) from hub \(hub): post it again")
        }
        return .json(200, record.json())
    }

    func heartbeat(hub: String, _ request: ReceiverRequest) throws -> ReceiverResponse {
        guard let json = parseJSON(request.body), json["sentAt"]?.stringValue != nil, json["outbox"] != nil else {
            return .problem(400, "Bad Request", "the body is not a Heartbeat")
        }
        return try store.with { db in
            try db.cached("""
                INSERT INTO hubs(hub_id, last_heartbeat_at, last_heartbeat, heartbeats) VALUES(?,?,?,1)
                ON CONFLICT(hub_id) DO UPDATE SET last_heartbeat_at = excluded.last_heartbeat_at,
                    last_heartbeat = excluded.last_heartbeat, heartbeats = heartbeats + 1
                """).bind(.text(hub), .integer(now().millisecondsSinceEpoch), .text(json.serialized)).run()
            let s = try db.cached("SELECT heartbeat_sec, config_etag FROM hubs WHERE hub_id = ?").bind(.text(hub))
            defer { s.reset() }
            _ = try s.step()
            let seconds = s.isNull(0) ? options.heartbeatSeconds : Int(s.int64(0))
            let etag = s.text(1)
            let pending = try db.cached("SELECT count(*) FROM commands WHERE hub_id = ? AND result_status IS NULL").bind(.text(hub))
            defer { pending.reset() }
            _ = try pending.step()
            return .json(200, .object(dropping: [
                ("serverTime", .string(stamp(now()))), ("nextHeartbeatSec", seconds.map { .int(Int64($0)) }),
                ("configEtag", etag.map { .string($0) }), ("commandsPending", .bool(pending.int64(0) > 0)),
            ]))
        }
    }

    func config(hub: String, ifNoneMatch: String?) throws -> ReceiverResponse {
        let found: (String, String)? = try store.with { db in
            let s = try db.cached("SELECT config, config_etag FROM hubs WHERE hub_id = ? AND config IS NOT NULL").bind(.text(hub))
            defer { s.reset() }
            return try s.step() ? (s.text(0)!, s.text(1)!) : nil
        }
        guard let (toml, etag) = found else {
            return .problem(404, "Not Found", "the platform holds no configuration for hub \(hub)")
        }
        if ifNoneMatch == etag { return ReceiverResponse(status: 304, headers: ["ETag": etag]) }
        return ReceiverResponse(status: 200, headers: ["ETag": etag, "Content-Type": "application/toml"], body: Array(toml.utf8))
    }

    func commands(hub: String, _ request: ReceiverRequest) throws -> ReceiverOutcome {
        let after = request.query["after"].flatMap { Int64($0) } ?? 0
        let wait = min(60, max(0, request.query["wait"].flatMap { Int($0) } ?? 0))
        let list: [JSONValue] = try store.with { db in
            let s = try db.cached("SELECT command_id, command_seq, kind, args FROM commands WHERE hub_id = ? AND command_seq > ? ORDER BY command_seq").bind(.text(hub), .integer(after))
            defer { s.reset() }
            var out: [JSONValue] = []
            while try s.step() {
                out.append(.object([("commandId", .string(s.text(0)!)), ("commandSeq", .int(s.int64(1))), ("kind", .string(s.text(2)!)),
                                    ("args", (try? JSONValue.parse(s.text(3)!)) ?? .object([]))]))
            }
            return out
        }
        if list.isEmpty {
            return wait > 0 ? .pollAgain(wait: .seconds(wait)) : .respond(ReceiverResponse(status: 204))
        }
        return .respond(.json(200, .object([("commands", .array(list))])))
    }

    func commandResult(hub: String, commandID: String, _ request: ReceiverRequest) throws -> ReceiverResponse {
        guard let json = parseJSON(request.body), let status = json["status"]?.stringValue, ["done", "failed", "refused"].contains(status) else {
            return .problem(400, "Bad Request", "the body is not a CommandResult {commandId, status: done|failed|refused}")
        }
        let found: Bool = try store.with { db in
            try db.cached("UPDATE commands SET result_status = ?, result_detail = ?, result_at = ? WHERE hub_id = ? AND command_id = ?")
                .bind(.text(status), .text((json["detail"] ?? .object([])).serialized), .integer(now().millisecondsSinceEpoch), .text(hub), .text(commandID)).run()
            return db.changes == 1
        }
        return found ? .json(200, .object([("commandId", .string(commandID)), ("status", .string(status))]))
            : .problem(404, "Not Found", "no command \(commandID) for hub \(hub)")
    }
}
