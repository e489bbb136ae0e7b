#if canImport(Glibc)
import Glibc
#endif
import Agent
import BLEInput
import SerialInput
import Logging
import Synchronization
import Outbox
import SQLiteStore
import VaktpostCore
import VaktpostPosix

@main
struct Vaktpost: CommandGroup {
    static let name = "vaktpost"
    static let abstract = "Edge agent for digital supervision: bed, door and fall sensors to the response platform."
    static let discussion = "Configuration: \(ConfigFile.defaultPath) (see deploy/vaktpost.example.toml)."
    static var subcommands: [any Command.Type] {
        [RunCommand.self, StatusCommand.self, CheckCommand.self, TestAlarmCommand.self, SensorsCommand.self, ResetCounterCommand.self, EventsCommand.self,
         WipeCommand.self, ConfigCommand.self, DecodeCommand.self, QueueCommand.self, ReplayCommand.self, ScanCommand.self, VersionCommand.self]
    }

    /// Only the executable chooses where logs go (libraries take a Logger): stderr, with journald
    /// priority prefixes under systemd.
    static func main() async {
        LoggingSystem.bootstrap { JournaldLogHandler(label: $0) }
        await CommandLineParser.main(Vaktpost.self, version: AgentInfo.version, arguments: Array(CommandLine.arguments.dropFirst()))
    }
}

extension OptionSpec {
    static let config = OptionSpec.value("config", "FILE", "The config file.", default: ConfigFile.defaultPath)
    static let json = OptionSpec.flag("json", "Print JSON instead of text.")
}

/// `--config` and `--json`, shared by every technician command.
struct ConfigOptions {
    static let options: [OptionSpec] = [.config, .json]
    let config: String
    let json: Bool

    init(_ a: ParsedArguments) {
        config = a.string("config")!
        json = a.flag("json")
    }
}

struct ConfigCommand: CommandGroup {
    static let name = "config"
    static let abstract = "Work with the configuration file."
    static var subcommands: [any Command.Type] { [Check.self] }

    struct Check: Command {
        static let name = "check"
        static let abstract = "Check a config file and print a summary or every error found."
        static let discussion = "Exits 0 when the agent can start with the file, 1 when it cannot."
        static let options = ConfigOptions.options + [
            .flag("no-files", "Skip checking that the certificate and key files exist (for a config prepared on another computer)."),
        ]

        let options: ConfigOptions
        let noFiles: Bool

        init(_ a: ParsedArguments) {
            options = ConfigOptions(a)
            noFiles = a.flag("no-files")
        }

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

struct VersionCommand: Command {
    static let name = "version"
    static let abstract = "Print the agent's version and the libraries it runs on."
    static let options: [OptionSpec] = [.json]

    let json: Bool

    init(_ a: ParsedArguments) { json = a.flag("json") }

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

struct ReplayCommand: Command {
    static let name = "replay"
    static let abstract = "Run the supervision rules over a scenario on simulated time and print the events."
    static let discussion = """
            The config needs only [hub], [[sensors]] and [[rules]]. Each scenario line is one JSON object, in time order:
              {"at": "2026-03-29T01:50:00+01:00", "sensor": "bed", "reading": {"occupied": false}}
              {"at": "...", "sensor": "door", "seen": true}      a frame with no state (supervision only)
              {"at": "...", "restart": true}                     the agent restarts here
              {"at": "...", "end": true}                         run the clock to this time, then stop
            Reading keys: occupied, open, fall, pressed, motion, tamper (true/false), battery (0-100), rssi (dBm).
            Blank lines and lines starting with # are skipped. Each event is printed as one JSON line.
            """
    static let options: [OptionSpec] = [
        .value("config", "FILE", "The config file.", required: true),
        .value("scenario", "FILE", "The scenario, one JSON object per line.", required: true),
        .value("seed", "N", "Seed for event ids, so a replay is reproducible.", default: "0"),
    ]

    let config: String
    let scenario: String
    let seed: UInt64

    init(_ a: ParsedArguments) throws {
        config = a.string("config")!
        scenario = a.string("scenario")!
        seed = try a.number("seed")
    }

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
struct OutboxOptions {
    static let options: [OptionSpec] = [
        .value("config", "FILE", "The config file whose [outbox] path to read.", default: ConfigFile.defaultPath),
        .value("db", "PATH", "The outbox database itself (overrides the config)."),
        .json,
    ]
    let config: String
    let db: String?
    let json: Bool

    init(_ a: ParsedArguments) {
        config = a.string("config")!
        db = a.string("db")
        json = a.flag("json")
    }

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

struct QueueCommand: CommandGroup {
    static let name = "queue"
    static let abstract = "Show what waits in the outbox: depth per lane, oldest age, bytes, dead letters, evictions."
    static let discussion = "Reads the database read-only, so it is safe while the agent runs."
    static var subcommands: [any Command.Type] { [Show.self, DeadLetters.self, RetryDeadLetters.self] }
    static var defaultSubcommand: (any Command.Type)? { Show.self }

    struct Show: Command {
        static let name = "show"
        static let abstract = "Show the outbox (the default)."
        static let options = OutboxOptions.options
        let options: OutboxOptions
        init(_ a: ParsedArguments) { options = OutboxOptions(a) }

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

    struct DeadLetters: Command {
        static let name = "dead-letters"
        static let abstract = "List the events the platform rejected, with its reasons."
        static let options = OutboxOptions.options
        let options: OutboxOptions
        init(_ a: ParsedArguments) { options = OutboxOptions(a) }

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

    struct RetryDeadLetters: Command {
        static let name = "retry-dead-letters"
        static let abstract = "Put every dead letter back in the queue, once the platform accepts them again."
        static let options = OutboxOptions.options
        let options: OutboxOptions
        init(_ a: ParsedArguments) { options = OutboxOptions(a) }

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

struct DecodeCommand: CommandGroup {
    static let name = "decode"
    static let abstract = "Decode sensor frames by hand, exactly as the agent reads them."
    static var subcommands: [any Command.Type] { [BTHomeFrame.self, ESP3Frame.self] }

    struct ESP3Frame: Command {
        static let name = "esp3"
        static let abstract = "Decode an EnOcean ESP3 byte stream and print its last valid frame as one JSON object."
        static let discussion = """
                Prints the keys of `expect` in ../shared/testdata/esp3_vectors.json (packet_type, data_len, opt_len, rorg,
                sender_id, status, dbm, ...); with --eep, the profile's values too. Exits 1 when the stream holds no valid frame.
                  vaktpost decode esp3 --eep D5-00-01 55000707017AD50901825DAB0001FFFFFFFF3600C7
                """
        static let options: [OptionSpec] = [.value("eep", "EEP", "The sender's EnOcean Equipment Profile, e.g. D5-00-01.")]
        static let arguments = [ArgumentSpec(valueName: "HEX", help: "The bytes in hex, as read from the serial port.")]

        let eep: String?
        let stream: String

        init(_ a: ParsedArguments) throws {
            eep = a.string("eep")
            stream = a.positional(0)
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

    struct BTHomeFrame: Command {
        static let name = "bthome"
        static let abstract = "Decode BTHome v2 service data (the bytes after d2 fc) as one JSON object."
        static let discussion = """
                Prints {"sensors": {...}, "binary": {...}, "events": {...}}, the same shape as `expected` in
                ../shared/testdata/bthome_vectors.json. --prior packets from the same device are fed first, one
                second apart, so counter and packet-id checks see a history. A rejected frame exits 1 with the reason.
                  vaktpost decode bthome --mac 54:48:E6:8F:80:A5 --key 231d39c1d7cc1ab1aee224cd096db932 41e445f3c9962b332211006c7c4519
                """
        static let options: [OptionSpec] = [
            .value("mac", "MAC", "The sender's Bluetooth address, e.g. 54:48:E6:8F:80:A5.", required: true),
            .value("key", "HEX", "The sensor's bthome_key, 32 hex digits."),
            .value("prior", "HEX", "An earlier packet from the same device.", repeatable: true),
        ]
        static let arguments = [ArgumentSpec(valueName: "HEX", help: "The service data in hex.")]

        /// --mac in the form reports carry.
        let address: String
        let key: String?
        let prior: [String]
        let serviceData: String

        init(_ a: ParsedArguments) throws {
            let mac = a.string("mac")!
            guard let address = HCI.canonicalAddress(mac) else { throw ValidationError("--mac \(mac) is not a Bluetooth address like 54:48:E6:8F:80:A5") }
            self.address = address
            key = a.string("key")
            prior = a.strings("prior")
            serviceData = a.positional(0)
            if let key, Self.bytes(key)?.count != 16 { throw ValidationError("--key must be 32 hex digits") }
            for p in prior + [serviceData] where Self.bytes(p) == nil { throw ValidationError("\"\(p)\" is not hex") }
        }

        /// Hex with optional spaces or colons between bytes, as copied from btmon or a vendor app.
        static func bytes(_ text: String) -> [UInt8]? {
            Hex.bytes(String(text.filter { $0 != " " && $0 != ":" }))
        }

        func run() throws {
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

struct ScanCommand: Command {
    static let name = "scan"
    static let abstract = "List the sensors the hub can hear (--ble or --serial), with signal strength and what they say: for pairing."
    static let discussion = """
            --serial listens to the [[serial]] receivers and prints each telegram as it arrives, with teach-ins and their
            profile. --ble listens on the configured adapter (or reads a btsnoop capture with --replay) and shows every device
            heard: address, RSSI, how often, which configured sensor it is, and its BTHome decode. The table refreshes
            every 2 seconds; --json prints one JSON array at the end.
            """
    static let options: [OptionSpec] = [
        .flag("ble", "Scan for Bluetooth LE sensors."),
        .flag("serial", "Listen to the EnOcean receivers of the config's [[serial]] sections."),
        .value("seconds", "SECONDS", "How long to listen.", default: "30"),
        .value("replay", "FILE", "A btsnoop capture to read instead of the adapter."),
    ] + ConfigOptions.options

    let ble: Bool
    let serial: Bool
    let seconds: Int
    let replay: String?
    let options: ConfigOptions

    init(_ a: ParsedArguments) throws {
        ble = a.flag("ble")
        serial = a.flag("serial")
        seconds = try a.number("seconds")
        replay = a.string("replay")
        options = ConfigOptions(a)
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
                    let heard = router.withLock { $0.handle(telegram, at: time, receiver: r.name) }
                    guard !heard.repeated else { return }
                    var entry = telegram.json(eep: telegram.senderID.flatMap { eeps[$0] })
                    if case .object(var f) = entry {
                        f.insert(("receiver", .string(r.name)), at: 0)
                        f.append(("sensor", heard.sensor.map { .string($0.rawValue) } ?? .null))
                        if let misfit = heard.misfit { f.append(("refused", .string(misfit))) }
                        entry = .object(f)
                    }
                    lines.withLock { $0.append(entry) }
                    if !json {
                        let teach = telegram.teachInProfile.map { " TEACH-IN \($0.eep) manufacturer \($0.manufacturer)" } ?? (telegram.isTeachIn == true ? " TEACH-IN" : "")
                        let refused = heard.misfit.map { "  REFUSED: \($0)" } ?? ""
                        print("\(r.name)  \(telegram.senderID ?? "-")  \(telegram.dbm.map { "\($0) dBm" } ?? "-")  \(heard.sensor?.rawValue ?? "(not configured)")\(teach)\(refused)  \(entry.serialized)")
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
