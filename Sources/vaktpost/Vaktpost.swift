#if canImport(Glibc)
import Glibc
#endif
import Agent
import BLEInput
import SerialInput
import ArgumentParser
import Logging
import Synchronization
import Outbox
import SQLiteStore
import VaktpostCore
import VaktpostPosix

@main
struct Vaktpost: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vaktpost",
        abstract: "Edge agent for digital supervision: bed, door and fall sensors to the response platform.",
        discussion: "Configuration: \(ConfigFile.defaultPath) (see deploy/vaktpost.example.toml).",
        version: AgentInfo.version,
        subcommands: [RunCommand.self, StatusCommand.self, CheckCommand.self, TestAlarmCommand.self, SensorsCommand.self, EventsCommand.self,
                      WipeCommand.self, ConfigCommand.self, DecodeCommand.self, QueueCommand.self, ReplayCommand.self, ScanCommand.self, VersionCommand.self]
    )

    /// Only the executable chooses where logs go (libraries take a Logger): stderr, with journald
    /// priority prefixes under systemd.
    static func main() async {
        LoggingSystem.bootstrap { JournaldLogHandler(label: $0) }
        await main(nil)
    }
}

/// `--config` and `--json`, shared by every technician command.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The config file.", valueName: "FILE"))
    var config: String = ConfigFile.defaultPath

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false
}

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Work with the configuration file.",
        subcommands: [Check.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a config file and print a summary or every error found.",
            discussion: "Exits 0 when the agent can start with the file, 1 when it cannot."
        )

        @OptionGroup var options: ConfigOptions

        @Flag(name: .long, help: "Skip checking that the certificate and key files exist (for a config prepared on another computer).")
        var noFiles = false

        func run() throws {
            let report = ConfigFile.check(path: options.config, checkFiles: !noFiles)
            if options.json {
                print(ConfigCheckOutput.json(report).serialized)
            } else {
                print(ConfigCheckOutput.text(report, now: WallTime(nanosecondsSinceEpoch: SystemClock.now())), terminator: "")
            }
            if !report.isValid { throw ExitCode(1) }
        }
    }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Print the agent's version and the libraries it runs on."
    )

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        if json {
            print(AgentInfo.json.serialized)
            return
        }
        print("vaktpost \(AgentInfo.version)")
        for lib in AgentInfo.libraries {
            print("  \(lib.name): \(lib.version)\(lib.problem.map { "  PROBLEM: \($0)" } ?? "")")
        }
    }
}

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Run the supervision rules over a scenario on simulated time and print the events.",
        discussion: """
            The config needs only [hub], [[sensors]] and [[rules]]. Each scenario line is one JSON object, in time order:
              {"at": "2026-03-29T01:50:00+01:00", "sensor": "bed", "reading": {"occupied": false}}
              {"at": "...", "sensor": "door", "seen": true}      a frame with no state (supervision only)
              {"at": "...", "restart": true}                     the agent restarts here
              {"at": "...", "end": true}                         run the clock to this time, then stop
            Reading keys: occupied, open, fall, pressed, motion, tamper (true/false), battery (0-100), rssi (dBm).
            Blank lines and lines starting with # are skipped. Each event is printed as one JSON line.
            """
    )

    @Option(name: .long, help: ArgumentHelp("The config file.", valueName: "FILE"))
    var config: String

    @Option(name: .long, help: ArgumentHelp("The scenario, one JSON object per line.", valueName: "FILE"))
    var scenario: String

    @Option(name: .long, help: "Seed for event ids, so a replay is reproducible.")
    var seed: UInt64 = 0

    func run() throws {
        let report = ConfigFile.check(path: config, scope: .replay)
        guard let cfg = report.config, let zone = report.timeZone else {
            for d in report.report.diagnostics { printError(d.rendered(file: config)) }
            throw ExitCode(1)
        }
        let text: String
        do {
            text = String(decoding: try Files.read(scenario), as: UTF8.self)
        } catch {
            printError("\(scenario): cannot read the scenario: \(error)")
            throw ExitCode(1)
        }
        let steps: [ScenarioStep]
        switch Scenario.parse(text, sensors: cfg.sensors.map(\.id)) {
        case .success(let parsed): steps = parsed.map(\.step)
        case .failure(let e):
            printError("\(scenario):\(e.line): error: \(e.message)")
            throw ExitCode(1)
        }
        let dir = try Files.makeTemporaryDirectory(prefix: "vaktpost-replay")
        let stateFile = dir + "/rules.state.json"
        defer {
            Files.remove(stateFile)
            Files.remove(dir)
        }
        do {
            try Replay(config: cfg, zone: zone, stateFile: stateFile, seed: seed).run(steps) { event in
                print(Scenario.outputLine(event, zone: zone))
            }
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
    }
}

/// One report, as JSON on one line (`--json`) or as the text for people (which ends its own lines).
func printReport(json: Bool, _ object: @autoclosure () -> JSONValue, text: @autoclosure () -> String) {
    if json { print(object().serialized) } else { print(text(), terminator: "") }
}

func printError(_ line: String) {
    var stderr = StandardError()
    print(line, to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        let bytes = Array(string.utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}

/// Where the outbox is: `--db`, else `[outbox] path` from the config, else the default.
struct OutboxOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The config file whose [outbox] path to read.", valueName: "FILE"))
    var config: String = ConfigFile.defaultPath

    @Option(name: .long, help: ArgumentHelp("The outbox database itself (overrides the config).", valueName: "PATH"))
    var db: String?

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false

    /// The path, and the zone to show times in.
    func resolve() -> (path: String, zone: TimeZoneRules) {
        let report = ConfigFile.check(path: config, checkFiles: false)
        let zone = report.timeZone ?? (try? TimeZoneLoader.load(ConfigReader.defaultTimezone)) ?? .utc
        if let db { return (db, zone) }
        if let path = report.report.decoded?.outbox.path { return (path, zone) }
        printError("note: \(config) cannot be read; using the default outbox \(OutboxConfig.defaultPath)")
        return (OutboxConfig.defaultPath, zone)
    }
}

func explainOutboxError(_ error: any Error, path: String) -> String {
    if let e = error as? SQLiteError, e.code == 14 {  // SQLITE_CANTOPEN
        return "error: no outbox at \(path): the agent has not run yet, or [outbox] path points elsewhere (use --db PATH)"
    }
    return "error: \(path): \(error)"
}

struct QueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Show what waits in the outbox: depth per lane, oldest age, bytes, dead letters, evictions.",
        discussion: "Reads the database read-only, so it is safe while the agent runs.",
        subcommands: [Show.self, DeadLetters.self, RetryDeadLetters.self],
        defaultSubcommand: Show.self
    )

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show the outbox (the default).")
        @OptionGroup var options: OutboxOptions

        func run() throws {
            let (path, zone) = options.resolve()
            let now = WallTime(nanosecondsSinceEpoch: SystemClock.now())
            do {
                let status = try OutboxFile.status(path: path)
                printReport(json: options.json, QueueReport.json(status, path: path, now: now), text: QueueReport.text(status, path: path, now: now, zone: zone))
            } catch {
                printError(explainOutboxError(error, path: path))
                throw ExitCode(1)
            }
        }
    }

    struct DeadLetters: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "dead-letters", abstract: "List the events the platform rejected, with its reasons.")
        @OptionGroup var options: OutboxOptions

        func run() throws {
            let (path, zone) = options.resolve()
            do {
                let letters = try OutboxFile.deadLetters(path: path)
                printReport(json: options.json, QueueReport.deadLettersJSON(letters), text: QueueReport.deadLettersText(letters, zone: zone))
            } catch {
                printError(explainOutboxError(error, path: path))
                throw ExitCode(1)
            }
        }
    }

    struct RetryDeadLetters: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "retry-dead-letters",
            abstract: "Put every dead letter back in the queue, once the platform accepts them again.")
        @OptionGroup var options: OutboxOptions

        func run() throws {
            let (path, _) = options.resolve()
            do {
                let n = try OutboxFile.retryDeadLetters(path: path)
                print(options.json ? JSONValue.object([("requeued", .int(Int64(n)))]).serialized : "\(n) dead letter\(n == 1 ? "" : "s") put back in the queue")
            } catch {
                printError(explainOutboxError(error, path: path))
                throw ExitCode(1)
            }
        }
    }
}

struct DecodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Decode sensor frames by hand, exactly as the agent reads them.",
        subcommands: [BTHomeFrame.self, ESP3Frame.self]
    )

    struct ESP3Frame: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "esp3",
            abstract: "Decode an EnOcean ESP3 byte stream and print its last valid frame as one JSON object.",
            discussion: """
                Prints the keys of `expect` in ../shared/testdata/esp3_vectors.json (packet_type, data_len, opt_len, rorg,
                sender_id, status, dbm, ...); with --eep, the profile's values too. Exits 1 when the stream holds no valid frame.
                  vaktpost decode esp3 --eep D5-00-01 55000707017AD50901825DAB0001FFFFFFFF3600C7
                """
        )

        @Option(name: .long, help: ArgumentHelp("The sender's EnOcean Equipment Profile, e.g. D5-00-01.", valueName: "EEP"))
        var eep: String?

        @Argument(help: ArgumentHelp("The bytes in hex, as read from the serial port.", valueName: "HEX"))
        var stream: String

        func validate() throws {
            if let eep, !EEP.supported.contains(eep.uppercased()) {
                throw ValidationError("--eep \(eep) is not one the agent decodes: \(EEP.supported.joined(separator: ", "))")
            }
            guard BTHomeFrame.bytes(stream) != nil else { throw ValidationError("\"\(stream)\" is not hex") }
        }

        func run() throws {
            var framer = ESP3Framer()
            guard let last = framer.feed(BTHomeFrame.bytes(stream)!).last else {
                printError("no valid frame: \(framer.pending > 0 ? "the stream ends inside a frame" : "no sync byte with a valid header and data CRC")")
                throw ExitCode(1)
            }
            print(ESP3Telegram(last).json(eep: eep?.uppercased()).serialized)
        }
    }

    struct BTHomeFrame: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bthome",
            abstract: "Decode BTHome v2 service data (the bytes after d2 fc) as one JSON object.",
            discussion: """
                Prints {"sensors": {...}, "binary": {...}, "events": {...}}, the same shape as `expected` in
                ../shared/testdata/bthome_vectors.json. --prior packets from the same device are fed first, one
                second apart, so counter and packet-id checks see a history. A rejected frame exits 1 with the reason.
                  vaktpost decode bthome --mac 54:48:E6:8F:80:A5 --key 231d39c1d7cc1ab1aee224cd096db932 41e445f3c9962b332211006c7c4519
                """
        )

        @Option(name: .long, help: ArgumentHelp("The sender's Bluetooth address, e.g. 54:48:E6:8F:80:A5.", valueName: "MAC"))
        var mac: String

        @Option(name: .long, help: ArgumentHelp("The sensor's bthome_key, 32 hex digits.", valueName: "HEX"))
        var key: String?

        @Option(name: .long, help: ArgumentHelp("An earlier packet from the same device (repeatable).", valueName: "HEX"))
        var prior: [String] = []

        @Argument(help: ArgumentHelp("The service data in hex.", valueName: "HEX"))
        var serviceData: String

        func validate() throws {
            guard BlueZLibrary.canonicalAddress(mac) != nil else { throw ValidationError("--mac \(mac) is not a Bluetooth address like 54:48:E6:8F:80:A5") }
            if let key, Self.bytes(key)?.count != 16 { throw ValidationError("--key must be 32 hex digits") }
            for p in prior + [serviceData] where Self.bytes(p) == nil { throw ValidationError("\"\(p)\" is not hex") }
        }

        /// Hex with optional spaces or colons between bytes, as copied from btmon or a vendor app.
        static func bytes(_ text: String) -> [UInt8]? {
            Hex.bytes(String(text.filter { $0 != " " && $0 != ":" }))
        }

        func run() throws {
            let address = BlueZLibrary.canonicalAddress(mac)!
            let keyBytes = key.flatMap(Self.bytes)
            var history = BTHomeHistory()
            var t = WallTime(nanosecondsSinceEpoch: SystemClock.now())
            for p in prior {
                _ = BTHome.decode(serviceData: Self.bytes(p)!, mac: address, key: keyBytes, at: t, history: &history, decrypt: AESCCM.decrypt)
                t = t + .seconds(1)
            }
            switch BTHome.decode(serviceData: Self.bytes(serviceData)!, mac: address, key: keyBytes, at: t, history: &history, decrypt: AESCCM.decrypt) {
            case .success(let packet):
                print(packet.json.serialized)
            case .failure(let reason):
                printError("rejected: \(reason)")
                throw ExitCode(1)
            }
        }
    }
}

struct ScanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "List the sensors the hub can hear (--ble or --serial), with signal strength and what they say: for pairing.",
        discussion: """
            --serial listens to the [[serial]] receivers and prints each telegram as it arrives, with teach-ins and their
            profile. --ble listens on the configured adapter (or reads a btsnoop capture with --replay) and shows every device
            heard: address, RSSI, how often, which configured sensor it is, and its BTHome decode. The table refreshes
            every 2 seconds; --json prints one JSON array at the end.
            """
    )

    @Flag(name: .long, help: "Scan for Bluetooth LE sensors.")
    var ble = false

    @Flag(name: .long, help: "Listen to the EnOcean receivers of the config's [[serial]] sections.")
    var serial = false

    @Option(name: .long, help: "How long to listen.")
    var seconds: Int = 30

    @Option(name: .long, help: ArgumentHelp("A btsnoop capture to read instead of the adapter.", valueName: "FILE"))
    var replay: String?

    @OptionGroup var options: ConfigOptions

    func validate() throws {
        guard ble != serial else { throw ValidationError("say what to scan: --ble or --serial (one at a time)") }
        guard seconds > 0 else { throw ValidationError("--seconds must be at least 1") }
    }

    func run() throws {
        let checked = ConfigFile.check(path: options.config, checkFiles: false)
        if checked.report.decoded == nil { printError("note: \(options.config) cannot be read; devices are shown without sensor names") }
        let decoded = checked.report.decoded
        if serial { return try scanSerial(decoded) }
        let report = Mutex(ScanReport())
        let router = Mutex(BLERouter(sensors: decoded?.sensors ?? []))
        let heardEvent: @Sendable ([UInt8], WallTime) -> Void = { event, time in
            guard case .success(let reports) = HCI.advertisingReports(event) else { return }
            for r in reports {
                let heard = router.withLock { $0.handle(r, at: time, decrypt: AESCCM.decrypt) }
                report.withLock { $0.add(heard) }
            }
        }
        if let file = replay ?? decoded?.ble.replay {
            do {
                for record in try BTSnoopSource.events(path: file) { heardEvent(record.event, record.time) }
            } catch {
                printError("error: \(file): \(error)")
                throw ExitCode(1)
            }
        } else {
            let ble = decoded?.ble ?? .defaults
            let problem = Mutex<String?>(nil)
            let scanner = HCIScanner(
                options: .init(adapter: ble.adapter, mode: ble.mode, silentAfter: ble.silentAfter),
                now: { WallTime(nanosecondsSinceEpoch: SystemClock.now()) }, onEvent: heardEvent,
                onCondition: { condition in
                    if case .unavailable(let reason) = condition {
                        problem.withLock { $0 = reason }
                        printError("\(ble.adapter): \(reason)")
                    }
                })
            scanner.start()
            for tick in 1...(seconds * 2) {
                usleep(500_000)
                if !options.json && tick % 4 == 0 {
                    print("-- after \(tick / 2) s --\n" + report.withLock { $0.text }, terminator: "")
                }
            }
            scanner.stop()
            if let reason = problem.withLock({ $0 }), report.withLock({ $0.devices.isEmpty }) {
                printError("error: nothing heard: \(reason)")
                throw ExitCode(1)
            }
        }
        printReport(json: options.json, report.withLock { $0.json }, text: report.withLock { $0.text })
    }
}

extension ScanCommand {
    /// Shows telegrams as they arrive: sender, RSSI, profile values, teach-ins, configured sensor.
    func scanSerial(_ config: Config?) throws {
        guard let receivers = config?.serial, !receivers.isEmpty else {
            printError("error: \(options.config) has no [[serial]] receiver; add one with its match or path")
            throw ExitCode(1)
        }
        let sensors = config?.sensors ?? []
        let eeps = Dictionary(sensors.compactMap { s in s.enocean.map { ($0.sender, $0.eep) } }, uniquingKeysWith: { a, _ in a })
        let router = Mutex(SerialRouter(sensors: sensors))
        let lines = Mutex<[JSONValue]>([])
        let problems = Mutex<[String]>([])
        let json = options.json
        let started = receivers.map { r in
            SerialReceiver(
                options: .init(r), now: { WallTime(nanosecondsSinceEpoch: SystemClock.now()) },
                onTelegram: { telegram, time in
                    let heard = router.withLock { $0.handle(telegram, at: time) }
                    guard !heard.repeated else { return }
                    var entry = telegram.json(eep: telegram.senderID.flatMap { eeps[$0] })
                    if case .object(var f) = entry {
                        f.insert(("receiver", .string(r.name)), at: 0)
                        f.append(("sensor", heard.sensor.map { .string($0.rawValue) } ?? .null))
                        entry = .object(f)
                    }
                    lines.withLock { $0.append(entry) }
                    if !json {
                        let teach = telegram.teachInProfile.map { " TEACH-IN \($0.eep) manufacturer \($0.manufacturer)" } ?? (telegram.isTeachIn == true ? " TEACH-IN" : "")
                        print("\(r.name)  \(telegram.senderID ?? "-")  \(telegram.dbm.map { "\($0) dBm" } ?? "-")  \(heard.sensor?.rawValue ?? "(not configured)")\(teach)  \(entry.serialized)")
                    }
                },
                onCondition: { condition in
                    switch condition {
                    case .unplugged(let reason):
                        problems.withLock { $0.append(reason) }
                        printError("\(r.name): \(reason)")
                    case .available(let path, let version, let baseID):
                        if !json { print("\(r.name): listening on \(path)\(version.map { ", \($0)" } ?? "")\(baseID.map { ", base id \($0)" } ?? "")") }
                    }
                })
        }
        started.forEach { $0.start() }
        usleep(useconds_t(seconds) * 1_000_000)
        started.forEach { $0.stop() }
        let heard = lines.withLock { $0 }
        if json { print(JSONValue.array(heard).serialized) }
        if heard.isEmpty, let problem = problems.withLock({ $0.last }) {
            printError("error: nothing heard: \(problem)")
            throw ExitCode(1)
        }
    }
}
