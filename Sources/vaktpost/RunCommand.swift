#if canImport(Glibc)
import Glibc
#endif
import Agent
import Logging
import ServiceLifecycle
import UnixSignals
import VaktpostCore
import VaktpostPosix

/// `vaktpost run`: the daemon. systemd starts it (deploy/vaktpost.service).
struct RunCommand: Command {
    static let name = "run"
    static let abstract = "Run the agent: sensors in, rules, outbox, platform out. systemd starts this (deploy/vaktpost.service)."
    static let discussion = """
            SIGTERM or SIGINT stop it within a few seconds with every accepted event committed. Under systemd it reports
            READY, STATUS and WATCHDOG. Technicians and support talk to it through `vaktpost status`, `check`, `test-alarm`,
            `sensors`, `events tail` over the control socket.
            """
    static let options: [OptionSpec] = [
        .config,
        .value("socket", "PATH", "The control socket.", default: RunOptions.defaultSocket),
        .value("socket-mode", "MODE", "The control socket's mode, octal.", default: "660"),
        .value("audit-log", "FILE", "Where every control-socket request is recorded with the caller's uid and pid.", default: RunOptions.defaultAuditLog),
        .value("simulate-from", "TIME", "Demo and tests: run on a simulated clock starting at this RFC 3339 time."),
        .value("speed", "N", "Demo and tests: the simulated clock runs this many times faster than real time.", default: "1"),
    ]

    let config: String
    let socket: String
    let socketMode: String
    let auditLog: String
    let simulateFrom: String?
    let speed: Double

    init(_ a: ParsedArguments) throws {
        config = a.string("config")!
        socket = a.string("socket")!
        socketMode = a.string("socket-mode")!
        auditLog = a.string("audit-log")!
        simulateFrom = a.string("simulate-from")
        speed = try a.number("speed")
        guard UInt32(socketMode, radix: 8) != nil else { throw ValidationError("--socket-mode is octal, e.g. 660") }
        guard speed >= 1 && speed <= 10_000 else { throw ValidationError("--speed is 1 to 10000") }
        if let simulateFrom, RFC3339.parse(simulateFrom) == nil { throw ValidationError("--simulate-from wants an RFC 3339 time, e.g. 2026-11-24T01:50:00+01:00") }
    }

    func run() async throws {
        let logger = Logger(label: "vaktpost")
        let options = RunOptions(configPath: config, socketPath: socket, socketMode: UInt32(socketMode, radix: 8)!, auditLog: auditLog,
                                 start: simulateFrom.flatMap { RFC3339.parse($0)?.time }, speed: speed)
        let daemon: HubDaemon
        do {
            daemon = try HubDaemon(options: options, logger: logger)
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        // One service per part; the group shuts them down in reverse order: the control socket
        // and the uplink first, then the inputs, the rules and their outbox last, so everything
        // heard until then is committed.
        let parts = HubDaemon.Part.allCases.map { AgentPart(daemon: daemon, part: $0) }
        let group = ServiceGroup(configuration: .init(
            services: parts.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) },
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        if let onto = daemon.restartOnto {
            // A config pushed by the platform, or the outbox opened after the start ran from a
            // stand-in: start again on it, same pid (systemd keeps tracking us).
            let ports = daemon.portsForNextRun()
            logger.notice("restarting onto \(onto)\(ports.isEmpty ? "" : ", the ports kept open: " + ports.map(\.name).joined(separator: ", "))")
            // Ignored signals and the blocked mask survive exec: hand the new image a clean slate,
            // or it could never be stopped with SIGTERM.
            var none = sigset_t()
            sigemptyset(&none)
            pthread_sigmask(SIG_SETMASK, &none, nil)
            for s in [SIGTERM, SIGINT, SIGHUP, SIGQUIT] { signal(s, SIG_DFL) }
            // The receivers' ports and the Bluetooth socket go through the exec open: the new
            // image reads what was heard meanwhile instead of opening them again (which resets a
            // USB300, and misses a button's one burst).
            let environment = DescriptorStore.environment(handingOn: ports).map { strdup($0) } + [nil]
            let args = CommandLine.arguments.map { strdup($0) } + [nil]
            execve("/proc/self/exe", args, environment)
            printError("error: could not restart (errno \(errno)); exiting so systemd starts the agent again")
            throw ExitCode(75)
        }
    }
}

/// One part of the daemon as a service of the group. The group stops them in reverse order
/// (control, uplink, inputs, rules). When the daemon itself asks to stop (wipe, a new config)
/// the part stopped first returns, which makes the group shut the others down in that same order.
struct AgentPart: Service {
    let daemon: HubDaemon
    let part: HubDaemon.Part

    func run() async throws {
        do {
            try daemon.start(part)
        } catch {
            printError("error: cannot open the control socket \(daemon.options.socketPath): \(error). systemd's RuntimeDirectory=vaktpost makes /run/vaktpost")
            throw ExitCode(1)
        }
        if part == HubDaemon.Part.allCases.last {
            // Until systemd asks (SIGTERM) or the daemon does (wipe, a new config): whichever first.
            let daemon = self.daemon
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await gracefulShutdown() }
                group.addTask { for await _ in daemon.stopRequests { return } }
                await group.next()
                group.cancelAll()
            }
        } else {
            try? await gracefulShutdown()
        }
        daemon.stop(part)
    }
}
