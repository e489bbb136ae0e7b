#if canImport(Glibc)
import Glibc
#endif
import Agent
import Outbox
import VaktpostCore
import VaktpostPosix

/// `--socket` and `--json` for the commands that talk to the running agent.
struct AgentOptions {
    static let options: [OptionSpec] = [
        .value("socket", "PATH", "The agent's control socket; also $VAKTPOST_SOCKET.", default: RunOptions.defaultSocket),
        .json,
    ]
    let socket: String
    let json: Bool

    init(_ a: ParsedArguments) {
        socket = a.given("socket") ?? Files.environment("VAKTPOST_SOCKET") ?? a.string("socket")!
        json = a.flag("json")
    }

    func ask(_ command: String, _ fields: [(String, JSONValue)] = []) throws -> JSONValue {
        do {
            return try ControlClient.send(.object([("command", .string(command))] + fields), socket: socket)
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
    }
}

struct StatusCommand: Command {
    static let name = "status"
    static let abstract = "Show the running agent: uptime, version, uplink and last contact, outbox, clock, every sensor, open alarms."
    static let options = AgentOptions.options

    let agent: AgentOptions
    init(_ a: ParsedArguments) { agent = AgentOptions(a) }

    func run() throws {
        let s = try agent.ask("status")
        printReport(json: agent.json, s, text: DaemonReports.status(s))
    }
}

struct SensorsCommand: Command {
    static let name = "sensors"
    static let abstract = "List the configured sensors as the running agent hears them: last seen, battery, signal, state."
    static let options = AgentOptions.options

    let agent: AgentOptions
    init(_ a: ParsedArguments) { agent = AgentOptions(a) }

    func run() throws {
        let s = try agent.ask("sensors")
        printReport(json: agent.json, s, text: DaemonReports.sensors(s))
    }
}

struct EventsCommand: CommandGroup {
    static let name = "events"
    static let abstract = "Show the agent's events."
    static var subcommands: [any Command.Type] { [Tail.self] }

    struct Tail: Command {
        static let name = "tail"
        static let abstract = "The latest events the agent raised; --follow keeps printing new ones."
        static let options = AgentOptions.options + [
            .value("lines", short: "n", "N", "How many of the latest events.", default: "20"),
            .flag("follow", "Keep printing new events as they come (Ctrl-C to stop)."),
        ]

        let agent: AgentOptions
        let lines: Int
        let follow: Bool

        init(_ a: ParsedArguments) throws {
            agent = AgentOptions(a)
            lines = try a.number("lines")
            follow = a.flag("follow")
            guard lines >= 1 else { throw ValidationError("--lines must be at least 1") }
        }

        func run() throws {
            var after: Int64 = 0
            var limit = lines
            repeat {
                let answer = try agent.ask("events", [("after", .int(after)), ("limit", .int(Int64(limit)))])
                if case .array(let events)? = answer["events"] {
                    for e in events {
                        print(agent.json ? e.serialized : DaemonReports.event(e))
                        after = max(after, e["seq"]?.intValue ?? after)
                    }
                }
                limit = 500
                if follow { usleep(1_000_000) }
            } while follow
        }
    }
}

struct TestAlarmCommand: Command {
    static let name = "test-alarm"
    static let abstract = "The periodic alarm test: a test event through the alarm lane, until the platform acknowledges it."
    static let discussion = "Prints a receipt with the round-trip time, or says what went wrong and exits 1 when no acknowledgement came in time."
    static let options = AgentOptions.options + [.value("timeout", "SECONDS", "How long to wait for the acknowledgement.", default: "120")]

    let agent: AgentOptions
    let timeout: Int

    init(_ a: ParsedArguments) throws {
        agent = AgentOptions(a)
        timeout = try a.number("timeout")
        guard timeout >= 1 else { throw ValidationError("--timeout must be at least 1 second") }
    }

    func run() throws {
        let started = SystemClock.boottime()
        let id = try agent.ask("test-alarm")["eventId"]?.stringValue ?? "?"
        if !agent.json { print("test alarm \(id) stored; waiting for the platform (up to \(timeout) s)") }
        var last = ""
        while SystemClock.boottime() - started < UInt64(timeout) * 1_000_000_000 {
            let progress = try agent.ask("alarm", [("eventId", .string(id))])
            let status = progress["status"]?.stringValue ?? "?"
            if status != last && !agent.json {
                print("  \(String(format3(Double(SystemClock.boottime() - started) / 1e9))) s  \(status)")
                last = status
            }
            if status == "acknowledged" || status == "closed" {
                let rtt = Double(SystemClock.boottime() - started) / 1e9
                if agent.json {
                    print(JSONValue.object([("eventId", .string(id)), ("status", .string(status)), ("roundTripS", .double(rtt))]).serialized)
                } else {
                    print("RECEIPT  test alarm \(id) \(status) by the response centre; round trip \(format3(rtt)) s")
                }
                return
            }
            usleep(1_000_000)
        }
        let hint = last == "queued"
            ? "the platform never received it: check `vaktpost status` (uplink), the network, and `vaktpost check`"
            : "the platform received it (\(last)) but no operator acknowledged it: call the response centre"
        printError("FAILED  test alarm \(id) not acknowledged within \(timeout) s: \(hint)")
        throw ExitCode(1)
    }
}

struct ResetCounterCommand: Command {
    static let name = "reset-counter"
    static let abstract = "Forget a BLE sensor's last BTHome counter and packet id, so that its next packet is taken."
    static let discussion = """
        For a sensor whose packets the agent refuses as replays (`vaktpost status`: REFUSED, `encryption counter N is
        older than the last accepted M`) because its counter started again after a battery change, or after it was
        re-keyed. Until its next packet, a replayed old packet would be taken too: run it on site, then press the
        sensor. Root or the agent's user only; written to the audit log.
          sudo vaktpost reset-counter fall-button
        """
    static let options = AgentOptions.options
    static let arguments = [ArgumentSpec(valueName: "SENSOR", help: "The sensor's id, as `vaktpost sensors` lists it.")]

    let agent: AgentOptions
    let sensor: String

    init(_ a: ParsedArguments) {
        agent = AgentOptions(a)
        sensor = a.positional(0)
    }

    func run() throws {
        let answer = try agent.ask("reset-counter", [("sensor", .string(sensor))])
        printReport(json: agent.json, answer, text: DaemonReports.resetCounter(answer))
    }
}

func format3(_ v: Double) -> String {
    let ms = Int((v * 1000).rounded())
    let frac = String(ms % 1000)
    return "\(ms / 1000).\(String(repeating: "0", count: 3 - frac.count))\(frac)"
}

struct CheckCommand: Command {
    static let name = "check"
    static let abstract = "The installer's checklist: config, sensors heard, inputs present, platform and certificate, clock, disk."
    static let discussion = "Each line is PASS, WARN or FAIL with what to do. Exits 0 only when every line passes."
    static let options = AgentOptions.options + [.config]

    let agent: AgentOptions
    let config: String

    init(_ a: ParsedArguments) {
        agent = AgentOptions(a)
        config = a.string("config")!
    }

    func run() throws {
        let list = Checklist.run(configPath: config, socket: agent.socket)
        printReport(json: agent.json, list.json, text: list.text)
        if !list.passed { throw ExitCode(1) }
    }
}

struct WipeCommand: Command {
    static let name = "wipe"
    static let abstract = "Decommission the hub: stop the agent and delete the outbox, rule state, keys and the resident's config."
    static let discussion = """
            Refuses while alarms are undelivered or unacknowledged unless --force. Prints a receipt of what was deleted
            (for the municipality's privacy routine). The audit log is kept: it records the wipe.
            """
    static let options = AgentOptions.options + [
        .config,
        .flag("force", "Wipe even though alarms have not reached the platform."),
    ]

    let agent: AgentOptions
    let config: String
    let force: Bool

    init(_ a: ParsedArguments) {
        agent = AgentOptions(a)
        config = a.string("config")!
        force = a.flag("force")
    }

    func run() throws {
        let checked = ConfigFile.check(path: config, checkFiles: false)
        guard let decoded = checked.report.decoded else {
            printError("error: cannot read \(config); pass --config FILE (the wipe needs it to find the files)")
            throw ExitCode(1)
        }
        let outboxPath = decoded.outbox.path
        if let status = try? OutboxFile.status(path: outboxPath) {
            let waiting = (status.lanes[.alarm]?.depth ?? 0) + status.awaitingAcknowledgement
            if waiting > 0 && !force {
                printError("refused: \(waiting) alarm-lane event(s) have not reached the platform or are not acknowledged yet. "
                           + "Wait (vaktpost status), or pass --force to delete them anyway.")
                throw ExitCode(1)
            }
        }
        // Stop the agent: under systemd for good (it would restart), otherwise over the socket.
        if access("/run/systemd/system", F_OK) == 0 { _ = system("systemctl disable --now vaktpost.service >/dev/null 2>&1") }
        if (try? ControlClient.send(.object([("command", .string("shutdown"))]), socket: agent.socket)) != nil {
            for _ in 0..<100 where (try? UnixConnection.connect(path: agent.socket)) != nil { usleep(100_000) }
        }
        let directory = decoded.outbox.directory
        var files = [outboxPath, outboxPath + "-wal", outboxPath + "-shm", directory + "/bthome.json", directory + "/rules.state.json"]
        if let key = decoded.platform?.clientKey { files.append(key) }
        if let cert = decoded.platform?.clientCert { files.append(cert) }
        files.append(config)
        var receipt: [JSONValue] = []
        var failed = false
        for path in files {
            let size = (try? Files.status(path))?.size
            guard let size else {
                receipt.append(.object([("path", .string(path)), ("result", .string("not present"))]))
                continue
            }
            if unlink(path) == 0 {
                receipt.append(.object([("path", .string(path)), ("result", .string("deleted")), ("bytes", .int(size))]))
            } else {
                failed = true
                receipt.append(.object([("path", .string(path)), ("result", .string("NOT deleted: errno \(errno)"))]))
            }
        }
        let when = RFC3339.format(WallTime(nanosecondsSinceEpoch: SystemClock.now()), utcOffsetSeconds: 0, fractionDigits: 0)
        if agent.json {
            print(JSONValue.object([("hubId", .string(decoded.hub.id)), ("wipedAt", .string(when)), ("files", .array(receipt))]).serialized)
        } else {
            print("WIPE RECEIPT  hub \(decoded.hub.id)  \(when)")
            for r in receipt {
                print("  \(r["result"]?.stringValue ?? "")  \(r["path"]?.stringValue ?? "")\(r["bytes"]?.intValue.map { " (\($0) bytes)" } ?? "")")
            }
            print(failed ? "some files could not be deleted: run as root" : "the agent is stopped and disabled; nothing of the resident remains in these files")
        }
        if failed { throw ExitCode(1) }
    }
}
