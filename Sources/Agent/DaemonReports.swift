import Outbox
import Uplink
import VaktpostCore
import VaktpostPosix

/// What the technician and support commands print from the daemon's answers. Text for people
/// at a terminal, the daemon's JSON unchanged for `--json`.
public enum DaemonReports {
    static func seconds(_ v: JSONValue?) -> String {
        guard let s = v?.intValue else { return "-" }
        if s < 120 { return "\(s) s" }
        if s < 7200 { return "\(s / 60) min" }
        if s < 172_800 { return "\(s / 3600) h \(s % 3600 / 60) min" }
        return "\(s / 86400) days"
    }

    public static func status(_ s: JSONValue) -> String {
        var out = "hub \(s["hubId"]?.stringValue ?? "?") · vaktpost \(s["version"]?.stringValue ?? "?") · up \(seconds(s["uptimeS"])) · config \(s["configVersion"]?.stringValue ?? "-")\n"
        if s["simulatedTime"]?.boolValue == true { out += "time    SIMULATED: \(s["now"]?.stringValue ?? "")\n" }
        let u = s["uplink"]
        if u?["configured"]?.boolValue == false {
            out += "uplink  not configured (no [platform] section)\n"
        } else {
            let last = u?["lastContactAt"]?.stringValue ?? "never"
            out += "uplink  \(u?["up"]?.boolValue == true ? "up" : "DOWN"), last contact \(last), heartbeat \(seconds(u?["heartbeatS"])) · \(u?["url"]?.stringValue ?? "")\n"
        }
        let o = s["outbox"]
        out += "outbox  alarm lane \(o?["alarmLane"]?.intValue ?? 0), bulk lane \(o?["bulkLane"]?.intValue ?? 0) (oldest \(seconds(o?["oldestAgeS"]))), "
            + "awaiting acknowledgement \(o?["awaitingAcknowledgement"]?.intValue ?? 0), dead letters \(o?["deadLetters"]?.intValue ?? 0)\n"
        if let failure = o?["writeFailure"]?.stringValue {
            out += "        CANNOT WRITE (\(failure)): \(o?["inMemory"]?.intValue ?? 0) events held in memory, alarms sent from there\n"
        }
        out += "clock   \(s["clockSynced"]?.boolValue == true ? "synchronised" : "NOT synchronised")\n"
        if let d = s["diskFreePct"], case .double(let pct) = d { out += "disk    \(pct) % free\n" }
        if case .array(let rs)? = s["receivers"], !rs.isEmpty {
            out += "inputs  " + rs.map { "\($0["name"]?.stringValue ?? "?") \($0["present"]?.boolValue == true ? "present" : "MISSING")" }.joined(separator: ", ") + "\n"
        }
        out += "\n" + sensors(s)
        if case .array(let open)? = s["openAlarms"], !open.isEmpty {
            out += "\nOPEN ALARMS\n"
            for a in open {
                out += "  \(a["occurredAt"]?.stringValue ?? "")  \(a["type"]?.stringValue ?? "")  \(a["sensor"]?.stringValue ?? "")  \(a["location"]?["text"]?.stringValue ?? "")\n"
            }
        } else {
            out += "\nopen alarms: none\n"
        }
        return out
    }

    public static func sensors(_ s: JSONValue) -> String {
        guard case .array(let list)? = s["sensors"], !list.isEmpty else { return "no sensors configured\n" }
        var rows = [["SENSOR", "ROLE", "ROOM", "VIA", "LAST SEEN", "SILENT", "BATTERY", "RSSI", "STATE"]]
        for x in list {
            rows.append([x["id"]?.stringValue ?? "?", x["role"]?.stringValue ?? "", x["room"]?.stringValue ?? "", x["transport"]?.stringValue ?? "",
                         x["lastSeenAt"]?.stringValue ?? "never", x["lastSeenAt"] == nil ? "-" : seconds(x["silentForS"]),
                         x["batteryPct"]?.intValue.map { "\($0) %" } ?? "-", x["rssi"]?.intValue.map { "\($0) dBm" } ?? "-",
                         x["refused"].map(HealthSnapshot.Refusal.summary) ?? x["state"]?.stringValue ?? "-"])
        }
        let widths = rows[0].indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
        return rows.map { row in row.indices.map { padded(row[$0], widths[$0]) }.joined(separator: "  ") }.joined(separator: "\n") + "\n"
    }

    /// `vaktpost reset-counter`: what was forgotten, and how the technician sees that it worked.
    public static func resetCounter(_ r: JSONValue) -> String {
        let sensor = "sensor \(r["sensor"]?.stringValue ?? "?") (\(r["address"]?.stringValue ?? "?"))"
        guard let forgot = r["forgot"] else {
            return "\(sensor): nothing was kept for it, so its next packet is taken as a first one already. If `vaktpost status` still shows it REFUSED, the reason there is not its counter\n"
        }
        let kept = [forgot["lastCounter"]?.intValue.map { "encryption counter \($0)" }, forgot["lastPacketId"]?.intValue.map { "packet id \($0)" }]
            .compactMap { $0 }.joined(separator: " and ")
        return "\(sensor): forgot \(kept.isEmpty ? "its last advertisement" : "its last " + kept); its next packet is taken as a first one.\n"
            + "Press its button (or wait for its next report), then `vaktpost status`: REFUSED goes from its STATE, and sensor.refused clears \(DurationText.format(RuleEngine.refusalQuiet)) after the last refused packet\n"
    }

    public static func event(_ e: JSONValue) -> String {
        let place = [e["deviceId"]?.stringValue, e["location"]?["text"]?.stringValue].compactMap { $0 }.joined(separator: " · ")
        return "\(e["occurredAt"]?.stringValue ?? "")  #\(e["seq"]?.intValue ?? 0)  \(padded(e["class"]?.stringValue ?? "", 9))  "
            + "\(e["type"]?.stringValue ?? "") \(e["state"]?.stringValue ?? "")\(place.isEmpty ? "" : "  " + place)"
    }
}

/// `vaktpost check`: the installer's checklist. Each line PASS, WARN or FAIL with a hint; the
/// command succeeds only when every line passes.
public struct Checklist {
    public enum Verdict: String { case pass = "PASS", warn = "WARN", fail = "FAIL" }

    public struct Line {
        public var verdict: Verdict
        public var what: String
        public var hint: String?
    }

    public private(set) var lines: [Line] = []
    public var passed: Bool { lines.allSatisfy { $0.verdict == .pass } }

    public init() {}

    mutating func add(_ verdict: Verdict, _ what: String, _ hint: String? = nil) { lines.append(Line(verdict: verdict, what: what, hint: hint)) }

    public var text: String {
        lines.map { "\($0.verdict.rawValue)  \($0.what)" + ($0.hint.map { "\n      → \($0)" } ?? "") }.joined(separator: "\n") + "\n"
            + (passed ? "\nall checks passed\n" : "\n\(lines.filter { $0.verdict != .pass }.count) of \(lines.count) checks need attention\n")
    }

    public var json: JSONValue {
        .object([("passed", .bool(passed)), ("checks", .array(lines.map { .object(dropping: [
            ("verdict", .string($0.verdict.rawValue)), ("check", .string($0.what)), ("hint", $0.hint.map { .string($0) }),
        ]) }))])
    }

    /// Runs every check: the config file, the running agent's view of sensors and inputs, the
    /// platform over TLS with the hub's certificate, the clock, the disk.
    public static func run(configPath: String, socket: String) -> Checklist {
        var c = Checklist()
        let report = ConfigFile.check(path: configPath)
        guard let config = report.config else {
            let first = report.report.diagnostics.first { $0.severity == .error }
            c.add(.fail, "config \(configPath) is valid", first.map { $0.rendered(file: configPath) } ?? "run `vaktpost config check`")
            return c
        }
        c.add(.pass, "config \(configPath) is valid (\(config.sensors.count) sensors, \(config.rules.count) rules)")

        let status = try? ControlClient.send(.object([("command", .string("status"))]), socket: socket)
        if let status {
            c.add(.pass, "the agent is running (up \(DaemonReports.seconds(status["uptimeS"])))")
            if let failure = status["outbox"]?["writeFailure"]?.stringValue {
                c.add(.fail, "the outbox writes to disk: \(failure)",
                      "disk full: free space now (`du -sh /var/log/* /var/lib/*`); I/O errors in `dmesg`: a failing SD card, replace it; "
                      + "`database is locked`: `fuser \(config.outbox.path)`. Events wait in memory until then")
            }
            c.sensorChecks(config, status)
            if case .array(let inputs)? = status["receivers"] {
                for i in inputs {
                    let name = i["name"]?.stringValue ?? "?"
                    if i["present"]?.boolValue == true { c.add(.pass, "input \(name) is present") }
                    else { c.add(.fail, "input \(name) is present", "plug the receiver in / check the adapter; `vaktpost status` and the journal say why") }
                }
            }
        } else {
            c.add(.fail, "the agent is running", "sudo systemctl start vaktpost; `journalctl -u vaktpost -n 50` says why it is not")
        }
        c.platformCheck(config)
        if SystemClock.isSynchronized() { c.add(.pass, "the clock is synchronised (NTP)") }
        else { c.add(.warn, "the clock is synchronised (NTP)", "timedatectl; check the network reaches an NTP server. Night windows follow the clock") }
        if let free = Files.freeSpace(config.outbox.directory) {
            let text = "disk space for the outbox: \(Int(free.percent)) % free (\(free.bytes >> 20) MiB)"
            if free.percent >= 10 { c.add(.pass, text) }
            else if free.percent >= 5 { c.add(.warn, text, "free space soon: the outbox needs room to hold events through an outage") }
            else { c.add(.fail, text, "free space now (`du -sh /var/log/* /var/lib/*`)") }
        }
        return c
    }

    mutating func sensorChecks(_ config: Config, _ status: JSONValue) {
        guard case .array(let sensors)? = status["sensors"] else { return }
        for s in sensors {
            let id = s["id"]?.stringValue ?? "?"
            let detail = [s["rssi"]?.intValue.map { "RSSI \($0) dBm" }, s["batteryPct"]?.intValue.map { "battery \($0) %" }].compactMap { $0 }.joined(separator: ", ")
            if let refused = s["refused"] {
                let hint = s["transport"]?.stringValue == "enocean"
                    ? "set its eep to the sensor's profile (`vaktpost scan --serial` shows what it sends; a teach-in names its profile); an encrypted sensor: turn EnOcean security off on it"
                    : "a wrong bthome_key: compare it with the sensor's; a counter gone back after a battery change: `sudo vaktpost reset-counter \(id)`; `vaktpost scan --ble` shows each packet's fate"
                add(.fail, "sensor \(id) heard: \(refused["count"]?.intValue ?? 0) packets refused since \(refused["since"]?.stringValue ?? "?") (\(refused["reason"]?.stringValue ?? ""))", hint)
                continue
            }
            guard s["lastSeenAt"] != nil else {
                add(.fail, "sensor \(id) heard", "nothing heard since the agent started: wake it (press its button, open the door), check its key/address and range; `vaktpost scan`")
                continue
            }
            let silent = s["silentForS"]?.intValue ?? 0
            let limit = s["supervisionS"]?.intValue
            let what = "sensor \(id) heard \(DaemonReports.seconds(s["silentForS"])) ago" + (detail.isEmpty ? "" : " (\(detail))")
            if let limit, silent > limit { add(.fail, what, "silent longer than its supervision time (\(DaemonReports.seconds(.int(limit)))): battery, range or pairing") }
            else if let rssi = s["rssi"]?.intValue, rssi < -90 { add(.warn, what, "weak signal: move the hub or the sensor closer, or add a repeater") }
            else if let battery = s["batteryPct"]?.intValue, let sc = config.sensors.first(where: { $0.id.rawValue == id }), battery < sc.batteryLow {
                add(.warn, what, "battery below \(sc.batteryLow) %: replace it now, before you leave")
            } else { add(.pass, what) }
        }
    }

    mutating func platformCheck(_ config: Config) {
        guard let platform = config.platform else {
            add(.warn, "platform configured", "no [platform] section: events stay on the hub")
            return
        }
        do {
            let client = try HTTPClient(tls: TLSSettings(platform, totalTimeout: .seconds(15)))
            let r = try client.send("GET", platform.url + "/v1/hubs/\(config.hub.id)/config", headers: ["Accept: application/toml"])
            let expiry = r.certificateExpiry.map { days in " (its certificate expires in \(days) days)" } ?? ""
            switch r.status {
            case 401: add(.fail, "platform \(platform.url) accepts the hub", "it saw no client certificate: check client_cert and client_key")
            case 403: add(.fail, "platform \(platform.url) accepts the hub", "its certificate is not for hub \(config.hub.id): check [hub] id against the certificate")
            default:
                if let days = r.certificateExpiry, days < 30 { add(.warn, "platform \(platform.url) reachable with a valid certificate\(expiry)", "tell the platform operator its certificate expires soon") }
                else { add(.pass, "platform \(platform.url) reachable with a valid certificate\(expiry), HTTP \(r.httpVersion)") }
            }
        } catch {
            // Both calls throw CurlError only: its description says what to do.
            add(.fail, "platform \(platform.url) reachable", error.description)
        }
    }
}
