import Foundation
import Testing
import TestSupport

/// The agent as a technician installs it: `vaktpost run` as a process, the reference receiver
/// over mutual TLS, BLE from a btsnoop capture and EnOcean from a fake USB300 on a pty
/// (demo/scene.py, demo/fake_usb300.py), on a simulated night at high speed.
final class NightHub {
    static let start = "2026-11-24T01:45:00+01:00"
    let dir: String
    let receiver: ReceiverProcess
    let speed: Double
    var agent: Process?
    var fake: Process?
    var t0 = Date()

    init(speed: Double = 300, receiverArguments: [String] = ["--ack-after", "1"]) throws {
        dir = NSTemporaryDirectory() + "vaktpost-e2e-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/state", withIntermediateDirectories: true)
        chmod(dir, 0o755)  // a caller of another uid must be able to reach the socket (the refused-caller test)
        self.speed = speed
        receiver = try ReceiverProcess(arguments: receiverArguments)
        _ = try run("/usr/bin/env", ["python3", repositoryRoot + "/demo/scene.py", dir])
        let template = try String(contentsOfFile: repositoryRoot + "/demo/vaktpost.toml.in", encoding: .utf8)
        // The hub's own copy of its identity: `wipe` deletes it.
        try FileManager.default.createDirectory(atPath: dir + "/pki", withIntermediateDirectories: true)
        for f in ["ca.pem", "hub-0001.pem", "hub-0001.key"] { try FileManager.default.copyItem(atPath: "\(testPKI)/\(f)", toPath: "\(dir)/pki/\(f)") }
        let config = template.replacingOccurrences(of: "@DIR@", with: dir).replacingOccurrences(of: "@PORT@", with: String(receiver.port))
        try config.write(toFile: dir + "/vaktpost.toml", atomically: true, encoding: .utf8)
        t0 = Date()
        startFake()
    }

    deinit {
        stopAgent(signal: SIGKILL)
        if let fake { kill(fake.processIdentifier, SIGKILL); fake.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: dir)
    }

    var socket: String { dir + "/control.sock" }
    var config: String { dir + "/vaktpost.toml" }

    func startFake() {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", repositoryRoot + "/demo/fake_usb300.py", dir + "/usb300", dir + "/bed.json", Self.start, String(speed)]
        p.standardOutput = FileHandle.nullDevice
        try! p.run()
        fake = p
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: dir + "/usb300") { usleep(20_000) }
    }

    /// The simulated time now, as the fake and the agent agree on it.
    func simulatedNow() -> Date { Date(timeIntervalSince1970: 1_795_481_100 + Date().timeIntervalSince(t0) * speed) }  // 01:45 +01:00

    func rfc3339(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.timeZone = TimeZone(secondsFromGMT: 3600)
        return f.string(from: d).replacingOccurrences(of: "Z", with: "+01:00")
    }

    /// The `Environment=` lines of deploy/vaktpost.service: the agent runs here as on a hub.
    static let unitEnvironment: [String: String] = {
        let unit = (try? String(contentsOfFile: repositoryRoot + "/deploy/vaktpost.service", encoding: .utf8)) ?? ""
        var environment: [String: String] = [:]
        for line in unit.split(separator: "\n") where line.hasPrefix("Environment=") {
            let pair = line.dropFirst("Environment=".count).split(separator: "=", maxSplits: 1)
            if pair.count == 2 { environment[String(pair[0])] = String(pair[1]) }
        }
        return environment
    }()

    /// Starts the agent on the shared simulated clock (at its present reading).
    func startAgent(extra: [String] = [], environment: [String: String] = [:]) throws {
        let p = Process()
        p.environment = ProcessInfo.processInfo.environment
            .merging(Self.unitEnvironment) { _, unit in unit }
            .merging(environment) { _, new in new }
        p.executableURL = URL(fileURLWithPath: builtExecutable("vaktpost"))
        p.arguments = ["run", "--config", config, "--socket", socket, "--audit-log", dir + "/audit.log",
                       "--simulate-from", rfc3339(simulatedNow()), "--speed", String(speed)] + extra
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        agent = p
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: socket) { usleep(20_000) }
        #expect(FileManager.default.fileExists(atPath: socket), "the agent did not open its control socket")
    }

    func stopAgent(signal: Int32 = SIGTERM) {
        guard let agent, agent.isRunning else { return }
        kill(agent.processIdentifier, signal)
        agent.waitUntilExit()
    }

    /// Sleeps until the simulated clock reads HH:MM.
    func until(_ hh: Int, _ mm: Int) {
        let target = 1_795_481_100 + Double((hh * 60 + mm) - (1 * 60 + 45)) * 60
        let left = (target - simulatedNow().timeIntervalSince1970) / speed
        if left > 0 { usleep(UInt32(left * 1_000_000)) }
    }

    func vaktpost(_ arguments: [String], as user: String? = nil) throws -> (status: Int32, out: String) {
        if let user { return try run("/usr/bin/setpriv", ["--reuid=\(user)", "--regid=\(user)", "--clear-groups", builtExecutable("vaktpost")] + arguments) }
        return try run(builtExecutable("vaktpost"), arguments)
    }

    @discardableResult
    func run(_ tool: String, _ arguments: [String]) throws -> (status: Int32, out: String) { try runProgram(tool, arguments) }

    /// "type/state" of every event the receiver stored, in arrival order.
    func stored() throws -> [String] {
        try receiver.arrivals().events.map { "\($0["type"] as? String ?? "?")/\($0["state"] as? String ?? "?")" }
    }

    /// Event ids committed to the outbox and not yet delivered (read with python's sqlite3).
    func undelivered() throws -> [String] {
        let r = try run("/usr/bin/env", ["python3", "-c", "import sqlite3,sys; print('\\n'.join(r[0] for r in sqlite3.connect(sys.argv[1]).execute('select event_id from events')))",
                                         dir + "/state/outbox.sqlite"])
        return r.out.split(separator: "\n").map(String.init)
    }
}

@Suite(.serialized) struct DaemonEndToEndTests {
    @Test func theNightReachesThePlatformAlarmsIncluded() throws {
        let hub = try NightHub()
        try hub.startAgent()
        hub.until(3, 0)
        #expect(try waitUntil(10) { try hub.stored().contains("fall.detected/active") })
        let stored = try hub.stored()
        for expected in ["bed.state/update", "motion.state/update", "door.opened_at_night/active", "bed.not_returned/active", "fall.detected/active"] {
            #expect(stored.contains(expected), "missing \(expected) in \(stored)")
        }
        let seqs = try hub.receiver.arrivals().events.compactMap { $0["seq"] as? Int }.sorted()
        #expect(seqs == Array(1...seqs.count), "every seq once, none missing")
        #expect(try hub.receiver.arrivals().duplicates == 0)
        // The technician's view of the running agent.
        let status = try hub.vaktpost(["status", "--socket", hub.socket])
        #expect(status.status == 0)
        #expect(status.out.contains("uplink  up"))
        #expect(status.out.contains("bed.not_returned"))
        let sensors = try hub.vaktpost(["sensors", "--socket", hub.socket])
        #expect(sensors.out.contains("hall") && sensors.out.contains("-62 dBm"), "\(sensors.out)")
        let tail = try hub.vaktpost(["events", "tail", "--socket", hub.socket, "-n", "50"])
        #expect(tail.out.contains("alarm      bed.not_returned active"), "\(tail.out)")
        let started = Date()
        hub.stopAgent()
        #expect(Date().timeIntervalSince(started) < 5, "SIGTERM must stop the agent within 5 s")
        #expect(hub.agent?.terminationStatus == 0)
        // After a clean stop, a start is not a restart to report.
        try hub.startAgent()
        Thread.sleep(forTimeInterval: 2)
        #expect(try !hub.stored().contains("agent.restarted/active"))
        hub.stopAgent()
    }

    /// systemd's notification protocol, with a datagram socket standing in for systemd.
    @Test func itTellsSystemdWhenReadyFeedsTheWatchdogAndSaysWhenStopping() throws {
        let hub = try NightHub()
        let socket = hub.dir + "/notify.sock"
        let listener = Process()
        listener.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        listener.arguments = ["python3", "-c", """
            import socket, sys
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
            out = open(sys.argv[2], "a")
            while True:
                out.write(s.recv(4096).decode() + "\\n---\\n"); out.flush()
            """, socket, hub.dir + "/notify.log"]
        try listener.run()
        defer { kill(listener.processIdentifier, SIGKILL); listener.waitUntilExit() }
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: socket) { usleep(20_000) }
        try hub.startAgent(environment: ["NOTIFY_SOCKET": socket, "WATCHDOG_USEC": "2000000"])
        Thread.sleep(forTimeInterval: 1.5)
        hub.stopAgent()
        Thread.sleep(forTimeInterval: 0.3)
        let log = try String(contentsOfFile: hub.dir + "/notify.log", encoding: .utf8)
        #expect(log.contains("READY=1\nSTATUS=running: 4 sensors"), "\(log)")
        #expect(log.contains("WATCHDOG=1"), "\(log)")
        #expect(log.contains("STOPPING=1"), "\(log)")
        // The receiver's port, for systemd to keep across a restart (the descriptor itself rides
        // along; this stand-in drops it).
        #expect(log.contains("FDSTORE=1\nFDNAME=serial-usb300"), "\(log)")
        #expect(log.components(separatedBy: "READY=1").count == 2, "READY once")
    }

    /// SIGKILL in the middle of the night: what was committed arrives after the restart, nothing
    /// twice, and the restart itself is reported.
    @Test func aKilledAgentLosesNothingAndReportsItsRestart() throws {
        let hub = try NightHub(receiverArguments: ["--ack-after", "1", "--down-for", "3600"])
        try hub.startAgent()
        hub.until(2, 45)  // the bed alarm (02:40) and a backlog wait: the platform is down
        kill(hub.agent!.processIdentifier, SIGKILL)
        hub.agent!.waitUntilExit()
        let committed = try hub.undelivered()
        #expect(committed.count >= 10, "\(committed.count) events committed before the kill")
        try hub.receiver.faults(["downForSec": 0])
        try hub.startAgent()
        hub.until(3, 0)
        #expect(try waitUntil(15) { try hub.stored().contains("fall.detected/active") })
        let arrived = try hub.receiver.arrivals().events.compactMap { $0["eventId"] as? String }
        #expect(Set(committed).isSubset(of: Set(arrived)), "lost: \(Set(committed).subtracting(arrived))")
        #expect(arrived.count == Set(arrived).count)
        let stored = try hub.stored()
        #expect(stored.contains("agent.restarted/active"))
        #expect(stored.contains("bed.not_returned/active"))
        hub.stopAgent()
    }

    @Test func checkAndTestAlarmAgainstAReachableAndAnUnreachablePlatform() throws {
        let hub = try NightHub()
        try hub.startAgent()
        hub.until(2, 0)
        let check = try hub.vaktpost(["check", "--config", hub.config, "--socket", hub.socket])
        #expect(check.out.contains("PASS  config"), "\(check.out)")
        #expect(check.out.contains("PASS  the agent is running"), "\(check.out)")
        #expect(check.out.contains("PASS  input usb300 is present"), "\(check.out)")
        #expect(check.out.contains("reachable with a valid certificate (its certificate expires in"), "\(check.out)")
        #expect(check.status == (check.out.contains("all checks passed") ? 0 : 1))
        let test = try hub.vaktpost(["test-alarm", "--socket", hub.socket, "--timeout", "20"])
        #expect(test.status == 0, "\(test.out)")
        #expect(test.out.contains("RECEIPT") && test.out.contains("acknowledged"), "\(test.out)")

        hub.receiver.kill()
        let down = try hub.vaktpost(["check", "--config", hub.config, "--socket", hub.socket])
        #expect(down.status == 1)
        #expect(down.out.contains("FAIL  platform https://localhost:\(hub.receiver.port) reachable"), "\(down.out)")
        #expect(down.out.contains("nothing answers at the platform's address"), "\(down.out)")
        let failed = try hub.vaktpost(["test-alarm", "--socket", hub.socket, "--timeout", "4"])
        #expect(failed.status == 1)
        #expect(failed.out.contains("FAILED") && failed.out.contains("never received it"), "\(failed.out)")
        hub.stopAgent()
    }

    /// A config pushed by the platform: a broken one is refused and the agent runs on; a good
    /// one replaces the file and the agent restarts itself onto it (same pid), reporting the version.
    @Test func aPushedConfigIsCheckedAppliedAndTheAgentRestartsOntoIt() throws {
        let hub = try NightHub(speed: 60)
        try hub.startAgent()
        let pid = hub.agent!.processIdentifier
        let good = try String(contentsOfFile: hub.config, encoding: .utf8)
        let broken = good.replacingOccurrences(of: "timezone = \"Europe/Oslo\"", with: "timezone = \"Europe/Atlantis\"")
        try hub.receiver.admin("PUT", "/api/hubs/hub-0001/config", broken)
        try hub.receiver.admin("POST", "/api/hubs/hub-0001/commands", "{\"kind\": \"reload-config\"}")
        func results() throws -> [String] {
            ((try hub.receiver.admin("GET", "/api/hubs/hub-0001/commands") as? [String: Any])?["commands"] as? [[String: Any]] ?? []).map { $0["resultStatus"] as? String ?? "-" }
        }
        #expect(try waitUntil(40) { try results() == ["refused"] }, "\((try? results()) ?? [])")
        #expect(try waitUntil(10) { try hub.stored().contains("config.rejected/active") })
        #expect(try String(contentsOfFile: hub.config, encoding: .utf8) == good, "the old config stays")

        let changed = good.replacingOccurrences(of: "heartbeat = \"30s\"", with: "heartbeat = \"45s\"")
        let etag = (try hub.receiver.admin("PUT", "/api/hubs/hub-0001/config", changed) as? [String: Any])?["etag"] as? String
        try hub.receiver.admin("POST", "/api/hubs/hub-0001/commands", "{\"kind\": \"reload-config\"}")
        #expect(try waitUntil(40) { try results() == ["refused", "done"] }, "\((try? results()) ?? [])")
        #expect(try waitUntil(10) { try String(contentsOfFile: hub.config, encoding: .utf8) == changed })
        #expect(try waitUntil(10) { (try? hub.vaktpost(["status", "--json", "--socket", hub.socket]).out.contains("\"configVersion\":\"\(etag!.replacingOccurrences(of: "\"", with: "\\\""))\"")) == true })
        #expect(hub.agent!.isRunning && hub.agent!.processIdentifier == pid, "restarted in place")
        #expect(try waitUntil(5) { (try? hub.vaktpost(["status", "--json", "--socket", hub.socket]).out.contains("\"heartbeatS\":45")) == true },
                "the restarted agent runs on the new config")
        // The receiver's port went through the exec open, not closed and opened again (which
        // resets a USB300): the new image was handed it, and it is the fake stick's pty.
        let environment = (try? String(contentsOfFile: "/proc/\(pid)/environ", encoding: .utf8)) ?? ""
        let handed = environment.split(separator: "\0").first { $0.hasPrefix("VAKTPOST_HANDED_FDS=") }
        #expect(handed?.hasPrefix("VAKTPOST_HANDED_FDS=\(pid) serial-usb300=") == true, "\(handed ?? "no hand-over")")
        if let fd = handed?.split(separator: "=").last {
            #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"))
                    == (try? FileManager.default.destinationOfSymbolicLink(atPath: hub.dir + "/usb300")), "the handed descriptor is the receiver's port")
        }
        // Foundation's Process loses track of a child that exec'd itself: stop it by pid.
        kill(pid, SIGTERM)
        let stopped = waitUntil(5) { kill(pid, 0) != 0 || (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.contains(") Z ") == true }
        #expect(stopped, "SIGTERM stops the restarted agent too")
        hub.agent = nil
    }

    /// A caller the agent does not trust is refused, and the refusal is in the audit log with its uid.
    @Test(.enabled(if: getuid() == 0, "switching to another uid needs root")) func aRefusedCallerIsAudited() throws {
        let hub = try NightHub()
        try hub.startAgent(extra: ["--socket-mode", "666"])
        let refused = try hub.vaktpost(["status", "--socket", hub.socket], as: "65534")
        #expect(refused.status == 1)
        #expect(refused.out.contains("refused: uid 65534"), "\(refused.out)")
        let ok = try hub.vaktpost(["status", "--socket", hub.socket])
        #expect(ok.status == 0)
        let audit = try String(contentsOfFile: hub.dir + "/audit.log", encoding: .utf8)
        #expect(audit.contains("\"uid\":65534,\"gid\":65534"), "\(audit)")
        #expect(audit.contains("\"command\":\"status\",\"outcome\":\"refused\""), "\(audit)")
        #expect(audit.contains("\"uid\":0,\"gid\":0"), "\(audit)")
        hub.stopAgent()
    }

    /// `vaktpost reset-counter`: the running agent forgets the sensor's counters, says what it
    /// forgot, and writes the file without them when it stops (deleting the entry by hand was
    /// undone by that same write).
    @Test func resetCounterForgetsASensorsCountersForGood() throws {
        let hub = try NightHub()
        try hub.startAgent()
        let counters = hub.dir + "/state/bthome.json"
        // The fall detector sends once, at 02:55 (14 s from the start at this speed); saved within 10 s.
        #expect(try waitUntil(40) { (try? String(contentsOfFile: counters, encoding: .utf8))?.contains("3C:2E:F5:AB:CD:EF") == true },
                "the fall sensor's history is saved once it is heard")
        let reset = try hub.vaktpost(["reset-counter", "fall", "--socket", hub.socket])
        #expect(reset.status == 0, "\(reset.out)")
        #expect(reset.out.contains("sensor fall (3C:2E:F5:AB:CD:EF): forgot its last packet id 4;"), "\(reset.out)")
        let unknown = try hub.vaktpost(["reset-counter", "nobody", "--socket", hub.socket])
        #expect(unknown.status == 1)
        #expect(unknown.out.contains("no sensor nobody is configured"), "\(unknown.out)")
        hub.stopAgent()
        let saved = try String(contentsOfFile: counters, encoding: .utf8)
        #expect(!saved.contains("3C:2E:F5:AB:CD:EF"), "\(saved)")
        #expect(saved.contains("3C:2E:F5:12:34:56"), "the door's history stays: \(saved)")
        let audit = try String(contentsOfFile: hub.dir + "/audit.log", encoding: .utf8)
        #expect(audit.contains("\"command\":\"reset-counter\",\"outcome\":\"ok\""), "\(audit)")
    }

    @Test func wipeRefusesWithUndeliveredAlarmsAndLeavesAReceipt() throws {
        let hub = try NightHub(receiverArguments: ["--down-for", "3600"])
        try hub.startAgent()
        hub.until(2, 25)  // the door alarm cannot be delivered
        let refused = try hub.vaktpost(["wipe", "--config", hub.config, "--socket", hub.socket])
        #expect(refused.status == 1)
        #expect(refused.out.contains("refused: "), "\(refused.out)")
        let wiped = try hub.vaktpost(["wipe", "--config", hub.config, "--socket", hub.socket, "--force"])
        #expect(wiped.status == 0, "\(wiped.out)")
        #expect(wiped.out.contains("WIPE RECEIPT  hub hub-0001"))
        #expect(wiped.out.contains("deleted  \(hub.dir)/state/outbox.sqlite"), "\(wiped.out)")
        #expect(wiped.out.contains("deleted  \(hub.config)"), "\(wiped.out)")
        hub.agent?.waitUntilExit()
        #expect(hub.agent?.terminationStatus == 0, "the agent stopped when asked")
        #expect(!FileManager.default.fileExists(atPath: hub.dir + "/state/outbox.sqlite"))
    }
}

/// The systemd unit is what the hub runs: it must load, and keep its hardening.
@Suite struct DeploymentTests {
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze"), "needs systemd-analyze (Debian: systemd)"))
    func theUnitVerifiesAndStaysHardened() throws {
        let dir = NSTemporaryDirectory() + "vaktpost-unit-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let unit = try String(contentsOfFile: repositoryRoot + "/deploy/vaktpost.service", encoding: .utf8)
        #expect(unit.contains("AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN\n"))
        #expect(unit.contains("ProtectSystem=strict") && unit.contains("WatchdogSec=") && unit.contains("Restart=always") && unit.contains("Type=notify"))
        // The receivers' ports are kept across restarts in systemd's store; without it they are
        // closed and opened again, and what a sensor sends meanwhile is lost.
        #expect(unit.contains("FileDescriptorStoreMax=16\n") && unit.contains("OOMScoreAdjust=-900\n"))
        // Restarted for ever: systemd's default start limit would leave a crashing agent failed.
        #expect(unit.contains("\nStartLimitIntervalSec=0\n") && unit.range(of: "StartLimitIntervalSec=0")!.lowerBound < unit.range(of: "[Service]")!.lowerBound,
                "StartLimitIntervalSec=0 in [Unit] (ignored in [Service])")
        // verify wants the ExecStart binary to exist: point it at the built one.
        try unit.replacingOccurrences(of: "/usr/local/bin/vaktpost", with: builtExecutable("vaktpost"))
            .write(toFile: dir + "/vaktpost.service", atomically: true, encoding: .utf8)
                let verify = try runProgram("/usr/bin/systemd-analyze", ["verify", dir + "/vaktpost.service"])
        #expect(verify.status == 0, "\(verify.out)")
        // systemd's exposure score: 10 is wide open; this unit scores about 4.
        let security = try runProgram("/usr/bin/systemd-analyze", ["security", "--offline=yes", "--threshold=50", dir + "/vaktpost.service"])
        #expect(security.status == 0, "\(security.out)")
    }

    /// The audit log's rotation as installed, run on a copy in a temporary directory as the
    /// test's own user: logrotate accepts the file and a forced run rotates and recreates the log.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/logrotate"), "needs logrotate (Debian: logrotate)"))
    func theAuditLogRotates() throws {
        let dir = NSTemporaryDirectory() + "vaktpost-logrotate-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let user = try runProgram("/usr/bin/id", ["-un"]).out.trimmingCharacters(in: .whitespacesAndNewlines)
        let group = try runProgram("/usr/bin/id", ["-gn"]).out.trimmingCharacters(in: .whitespacesAndNewlines)
        let config = try String(contentsOfFile: repositoryRoot + "/deploy/logrotate.d/vaktpost", encoding: .utf8)
        #expect(config.contains("/var/log/vaktpost/audit.log {") && config.contains("su vaktpost vaktpost") && config.contains("create 0640 vaktpost vaktpost"))
        try config.replacingOccurrences(of: "/var/log/vaktpost", with: dir)
            .replacingOccurrences(of: "vaktpost vaktpost", with: "\(user) \(group)")
            .write(toFile: dir + "/logrotate.conf", atomically: true, encoding: .utf8)
        try String(repeating: "{\"command\":\"status\",\"outcome\":\"ok\"}\n", count: 100).write(toFile: dir + "/audit.log", atomically: true, encoding: .utf8)
        let run = try runProgram("/usr/sbin/logrotate", ["--force", "--state", dir + "/state", dir + "/logrotate.conf"])
        #expect(run.status == 0, "\(run.out)")
        let rotated = try FileManager.default.attributesOfItem(atPath: dir + "/audit.log.1")
        #expect((rotated[.size] as? Int ?? 0) > 3000)
        let fresh = try FileManager.default.attributesOfItem(atPath: dir + "/audit.log")
        #expect(fresh[.size] as? Int == 0)
        #expect(fresh[.posixPermissions] as? Int == 0o640)
    }

    @Test func theInstallAndDemoScriptsParse() throws {
        for script in ["deploy/install.sh", "deploy/pki.sh", "demo/run.sh", ".ci/run"] {
            let r = try runProgram("/bin/bash", ["-n", repositoryRoot + "/" + script])
            #expect(r.status == 0, "\(script): \(r.out)")
        }
    }
}
