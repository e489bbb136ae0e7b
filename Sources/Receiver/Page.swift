import VaktpostCore

/// The page support staff open: one row per hub (online, last heartbeat, outbox, clock, open
/// alarms), then each hub's sensors and latest events. Plain HTML that refreshes itself; no scripts.
extension Platform {
    func page() throws -> String {
        let hubs = try hubs()
        var html = """
            <!doctype html><html lang="no"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
            <title>Vaktpost reference receiver</title><style>
            body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}
            td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#f3f3f3}
            .bad{color:#b00;font-weight:bold}.ok{color:#070}.muted{color:#777}</style></head><body>
            <h1>Vaktpost reference receiver</h1>
            <p class="muted">Updated \(escape(stamp(now()))) · JSON: <a href="/api/hubs">/api/hubs</a>, <a href="/api/arrivals">/api/arrivals</a></p>
            <table><tr><th>Hub</th><th>Link</th><th>Last heartbeat</th><th>Version</th><th>Outbox</th><th>Clock</th><th>Open alarms</th><th>Events</th></tr>
            """
        for hub in hubs {
            let id = hub["hubId"]?.stringValue ?? "?"
            let online = hub["online"]?.boolValue ?? false
            let health = hub["health"]
            let outbox = health?["outbox"]
            let open = hub["openAlarms"].flatMap { if case .array(let a) = $0 { a } else { nil } } ?? []
            html += "<tr><td><a href=\"#\(escape(id))\">\(escape(id))</a></td>"
            html += online ? "<td class=ok>online</td>" : "<td class=bad>offline</td>"
            html += "<td>\(escape(hub["lastHeartbeatAt"]?.stringValue ?? "never"))</td>"
            html += "<td>\(escape(health?["swVersion"]?.stringValue ?? "")) \(escape(health?["configVersion"]?.stringValue ?? ""))</td>"
            html += "<td>\(outbox.map { "\($0["depth"]?.intValue ?? 0) queued, oldest \($0["oldestAgeS"]?.intValue ?? 0) s" } ?? "")</td>"
            let synced = health?["clock"]?["synced"]?.boolValue
            html += synced == false ? "<td class=bad>not synced</td>" : "<td>\(synced == true ? "synced" : "")</td>"
            html += open.isEmpty ? "<td class=ok>none</td>" : "<td class=bad>\(open.count)</td>"
            html += "<td>\(hub["events"]?.intValue ?? 0)</td></tr>\n"
        }
        html += "</table>\n"
        for hub in hubs {
            let id = hub["hubId"]?.stringValue ?? "?"
            html += "<h2 id=\"\(escape(id))\">\(escape(id))</h2>\n"
            if case .array(let open)? = hub["openAlarms"], !open.isEmpty {
                html += "<h3>Open alarms</h3><table><tr><th>Type</th><th>Where</th><th>Occurred</th><th>Status</th></tr>\n"
                for a in open {
                    html += "<tr><td class=bad>\(escape(a["type"]?.stringValue ?? ""))</td><td>\(escape(a["location"]?.stringValue ?? ""))</td>"
                    html += "<td>\(escape(a["occurredAt"]?.stringValue ?? ""))</td><td>\(escape(a["status"]?.stringValue ?? ""))</td></tr>\n"
                }
                html += "</table>\n"
            }
            if case .array(let sensors)? = hub["health"]?["sensors"], !sensors.isEmpty {
                html += "<h3>Sensors</h3><table><tr><th>Sensor</th><th>State</th><th>Last seen</th><th>Battery</th><th>RSSI</th></tr>\n"
                for s in sensors {
                    // A sensor whose packets the hub refuses is sending but not heard: say why instead of its state.
                    let state = s["refused"].map(HealthSnapshot.Refusal.summary) ?? s["state"]?.stringValue ?? ""
                    html += "<tr><td>\(escape(s["deviceId"]?.stringValue ?? ""))</td><td>\(escape(state))</td>"
                    html += "<td>\(escape(s["lastSeenAt"]?.stringValue ?? "never"))</td><td>\(s["batteryPct"]?.intValue.map { "\($0) %" } ?? "")</td>"
                    html += "<td>\(s["rssi"]?.intValue.map { "\($0) dBm" } ?? "")</td></tr>\n"
                }
                html += "</table>\n"
            }
            html += "<h3>Latest events</h3><table><tr><th>Seq</th><th>Occurred</th><th>Class</th><th>Type</th><th>State</th><th>Where</th><th>Lane</th></tr>\n"
            for e in try events(hub: id, limit: 20) {
                let ev = e["event"]
                let cls = ev?["class"]?.stringValue ?? ""
                html += "<tr><td>\(ev?["seq"]?.intValue ?? 0)</td><td>\(escape(ev?["occurredAt"]?.stringValue ?? ""))</td>"
                html += "<td\(cls == "alarm" ? " class=bad" : "")>\(escape(cls))</td><td>\(escape(ev?["type"]?.stringValue ?? ""))</td>"
                html += "<td>\(escape(ev?["state"]?.stringValue ?? ""))</td><td>\(escape(ev?["location"]?["text"]?.stringValue ?? ""))</td>"
                html += "<td>\(escape(e["lane"]?.stringValue ?? ""))</td></tr>\n"
            }
            html += "</table>\n"
        }
        return html + "</body></html>\n"
    }

    func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }
}
