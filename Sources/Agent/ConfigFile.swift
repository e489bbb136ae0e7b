import VaktpostCore
import VaktpostPosix

/// A config file read from disk and checked: the core's validation plus what only the hub
/// itself can tell (is the zone installed, do the certificate files exist, are keys private).
public struct ConfigFileReport: Sendable {
    public var path: String
    public var report: ConfigReport
    public var timeZone: TimeZoneRules?
    public var scope: ConfigScope

    public var config: Config? { report.errors.isEmpty ? report.config : nil }
    public var isValid: Bool { config != nil }
}

public enum ConfigFile {
    public static let defaultPath = "/etc/vaktpost/vaktpost.toml"

    /// `checkFiles: false` skips the certificate and key files, for a config prepared on another
    /// computer than the hub it is for.
    public static func check(path: String, scope: ConfigScope = .agent, checkFiles: Bool = true) -> ConfigFileReport {
        let bytes: [UInt8]
        do {
            bytes = try Files.read(path, limit: 1 << 20)
        } catch {
            let hint = error.isNotFound
                ? "pass --config FILE, or copy deploy/vaktpost.example.toml to \(defaultPath) and edit it"
                : error.isPermissionDenied ? "run as root or as the vaktpost user (sudo vaktpost ...)" : nil
            let d = ConfigDiagnostic(.error, at: nil, "cannot read the config: \(error)", hint: hint)
            return ConfigFileReport(path: path, report: ConfigReport(config: nil, diagnostics: [d], locations: [:]), timeZone: nil, scope: scope)
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            let d = ConfigDiagnostic(.error, at: nil, "the config is not UTF-8 text", hint: "save it as UTF-8 (any Linux editor does by default)")
            return ConfigFileReport(path: path, report: ConfigReport(config: nil, diagnostics: [d], locations: [:]), timeZone: nil, scope: scope)
        }
        var report = ConfigReader.read(text, scope: scope)
        var zone: TimeZoneRules? = nil
        if let decoded = report.decoded {
            zone = checkHost(decoded, path: path, scope: scope, checkFiles: checkFiles, report: &report)
        }
        return ConfigFileReport(path: path, report: report, timeZone: zone, scope: scope)
    }

    /// Checks against the machine; adds findings to `report` and drops its config on error.
    static func checkHost(_ config: Config, path: String, scope: ConfigScope, checkFiles: Bool, report: inout ConfigReport) -> TimeZoneRules? {
        var found: [ConfigDiagnostic] = []
        var zone: TimeZoneRules? = nil
        do {
            // The core keeps only well-formed zone names (else the default), so this path is safe to open.
            zone = try TimeZoneLoader.load(config.hub.timezone)
        } catch {
            found.append(ConfigDiagnostic(.error, at: report.locations["hub.timezone"], error.description,
                                          hint: "`ls \(TimeZoneLoader.zoneinfoDirectory)/Europe` lists the zone names"))
        }
        if scope == .agent, checkFiles, let platform = config.platform {
            for (key, path) in [("ca_file", platform.caFile), ("client_cert", platform.clientCert), ("client_key", platform.clientKey)] {
                guard let path else { continue }
                found += checkFile(path, key: "platform.\(key)", at: report.locations["platform.\(key)"], secret: key == "client_key")
            }
        }
        let holdsKeys = config.sensors.contains { $0.ble?.bthomeKey != nil }
        if holdsKeys, let status = try? Files.status(path), status.mode & 0o004 != 0 {
            found.append(ConfigDiagnostic(
                .warning, at: nil, "the config holds bthome_key values and every user on the hub can read it",
                hint: "chown root:vaktpost \(path) && chmod 640 \(path)"))
        }
        report.diagnostics = (report.diagnostics + found).sortedByLocation()
        if found.contains(where: { $0.severity == .error }) { report.config = nil }
        return zone
    }

    static func checkFile(_ path: String, key: String, at: SourceLocation?, secret: Bool) -> [ConfigDiagnostic] {
        let status: FileStatus
        do {
            status = try Files.status(path)
        } catch {
            if error.isPermissionDenied {
                return [ConfigDiagnostic(.warning, at: at, "\(key): cannot look at \(path) as this user", hint: "run the check with sudo to see whether the agent can read it")]
            }
            return [ConfigDiagnostic(.error, at: at, "\(key): \(path) does not exist", hint: "copy the file there, or fix the path")]
        }
        guard status.isRegularFile else {
            return [ConfigDiagnostic(.error, at: at, "\(key): \(path) is not a regular file", hint: "point it at the PEM file itself")]
        }
        var out: [ConfigDiagnostic] = []
        if !Files.isReadable(path) {
            out.append(ConfigDiagnostic(.warning, at: at, "\(key): \(path) is not readable by this user", hint: "fine if the agent's user can read it; run the check with sudo to be sure"))
        }
        if secret, status.isReadableByOthers {
            out.append(ConfigDiagnostic(.warning, at: at, "\(key): the private key \(path) is readable by other users", hint: "chown vaktpost:vaktpost \(path) && chmod 600 \(path)"))
        }
        return out
    }
}

/// How `vaktpost config check` shows a report.
public enum ConfigCheckOutput {
    public static func text(_ r: ConfigFileReport, now: WallTime) -> String {
        var lines: [String] = []
        let errors = r.report.errors.count
        let warnings = r.report.warnings.count
        if let config = r.config {
            lines.append("\(r.path): OK (\(plural(config.sensors.count, "sensor")), \(plural(config.rules.count, "rule")))")
            lines += summary(config, zone: r.timeZone, now: now, scope: r.scope)
        }
        for d in r.report.diagnostics { lines.append(d.rendered(file: r.path)) }
        if errors > 0 {
            lines.append("\(r.path): \(plural(errors, "error"))\(warnings > 0 ? ", \(plural(warnings, "warning"))" : ""); the agent will not start with this config")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func plural(_ n: Int, _ word: String) -> String { "\(n) \(word)\(n == 1 ? "" : "s")" }

    static func summary(_ c: Config, zone: TimeZoneRules?, now: WallTime, scope: ConfigScope) -> [String] {
        var lines: [String] = []
        let local = zone.map { "local time \($0.format(now))" } ?? "zone not loaded"
        lines.append("  hub       \(c.hub.id), time zone \(c.hub.timezone) (\(local))")
        if scope == .agent {
            if let p = c.platform {
                var parts = ["CA " + (p.caFile ?? "system store")]
                if !p.pins.isEmpty { parts.append(plural(p.pins.count, "pin")) }
                parts.append(p.clientCert != nil ? "mutual TLS" : "no client certificate")
                parts.append("heartbeat " + DurationText.format(p.heartbeat))
                lines.append("  platform  \(p.url) (\(parts.joined(separator: ", ")))")
                if let s = p.secondaryURL { lines.append("            secondary \(s)") }
            } else {
                lines.append("  platform  none: events stay in the outbox until [platform] is set")
            }
        }
        for (i, s) in c.sensors.enumerated() {
            var how = "no transport"
            if let b = s.ble { how = "ble \(b.address) field \(b.field)\(b.bthomeKey != nil ? " encrypted" : "")" }
            if let e = s.enocean { how = "enocean \(e.sender) \(e.eep)" }
            let supervision = s.supervision.map { "silent after \(DurationText.format($0))" } ?? "not supervised"
            lines.append((i == 0 ? "  sensors   " : "            ") + "\(padded(s.id.rawValue, 16)) \(padded(s.role.rawValue, 7)) \(padded(s.room.rawValue, 12)) \(how), \(supervision)")
        }
        for (i, rule) in c.rules.enumerated() {
            var parts = [rule.kind.rawValue, rule.sensors.map(\.rawValue).joined(separator: ",")]
            if let w = rule.window { parts.append(w.description) }
            if let a = rule.after { parts.append("after " + DurationText.format(a)) }
            if let t = rule.at { parts.append("at \(t)") }
            lines.append((i == 0 ? "  rules     " : "            ") + "\(padded(rule.id, 16)) " + parts.joined(separator: " "))
        }
        if scope == .agent {
            lines.append("  outbox    \(c.outbox.path) (max \(c.outbox.maxBytes >> 20) MiB, \(c.outbox.maxRows) events)")
            if c.sensors.contains(where: { $0.transport == .ble }) || c.ble.replay != nil {
                lines.append("  ble       \(c.ble.replay.map { "replay \($0)" } ?? "\(c.ble.adapter), \(c.ble.mode.rawValue)")")
            }
            for s in c.serial {
                let match = s.match.map { m in [m.vendor.map { "vendor \($0)" }, m.model.map { "model \($0)" }, m.serial.map { "serial \($0)" }].compactMap { $0 }.joined(separator: " ") }
                lines.append("  serial    \(s.name): \(s.path ?? match ?? "") at \(s.baud) baud")
            }
        }
        return lines
    }


    public static func json(_ r: ConfigFileReport) -> JSONValue {
        func item(_ d: ConfigDiagnostic) -> JSONValue {
            .object(dropping: [
                ("line", d.location.map { .int(Int64($0.line)) }),
                ("column", d.location.map { .int(Int64($0.column)) }),
                ("message", .string(d.message)),
                ("hint", d.hint.map(JSONValue.string)),
            ])
        }
        var fields: [(String, JSONValue?)] = [
            ("file", .string(r.path)),
            ("valid", .bool(r.isValid)),
            ("errors", .array(r.report.errors.map(item))),
            ("warnings", .array(r.report.warnings.map(item))),
        ]
        if let c = r.config {
            fields.append(("hub", .object([("id", .string(c.hub.id)), ("timezone", .string(c.hub.timezone))])))
            fields.append(("sensors", .array(c.sensors.map { s in
                .object(dropping: [
                    ("id", .string(s.id.rawValue)), ("role", .string(s.role.rawValue)), ("room", .string(s.room.rawValue)),
                    ("transport", s.transport.map { .string($0.rawValue) }),
                ])
            })))
            fields.append(("rules", .array(c.rules.map { .object([("id", .string($0.id)), ("kind", .string($0.kind.rawValue))]) })))
        }
        return .object(dropping: fields)
    }
}
