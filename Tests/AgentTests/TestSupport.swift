#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization
@testable import Agent
import VaktpostCore
import VaktpostPosix

/// A fresh directory for one test, removed afterwards. Paths never collide between parallel tests.
func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    var template = Array("/tmp/vaktpost-test-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { fatalError("mkdtemp failed") }
    let dir = String(cString: made)
    defer { removeTree(dir) }
    return try body(dir)
}

func removeTree(_ path: String) {
    if let d = opendir(path) {
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            removeTree(path + "/" + name)
        }
        closedir(d)
        rmdir(path)
    } else {
        unlink(path)
    }
}

func write(_ text: String, to path: String, mode: UInt32 = 0o644) throws {
    try Files.writeAtomically(path, Array(text.utf8), mode: mode)
    chmod(path, mode_t(mode))
}

/// A daemon in-process (no inputs started) with a motion sensor `hall`, a button `button` and its
/// alarm rule, its config written to `dir`; with `serial`, a receiver `usb300` on that port.
func buttonHub(_ dir: String, outbox: String, socket: String, serial: String? = nil,
               logger: Logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }, adjust: (inout RunOptions) -> Void = { _ in }) throws -> HubDaemon {
    try write("""
        [hub]
        id = "hub-0001"
        [[sensors]]
        id = "hall"
        role = "motion"
        room = "hallway"
        transport = "enocean"
        sender = "0512A3F1"
        eep = "A5-07-01"
        [[sensors]]
        id = "button"
        role = "button"
        room = "hallway"
        transport = "enocean"
        sender = "00AB0001"
        eep = "F6-02-02"
        [[rules]]
        id = "button"
        kind = "button"
        sensor = "button"
        [outbox]
        path = "\(outbox)"
        """ + (serial.map { "\n[[serial]]\nname = \"usb300\"\npath = \"\($0)\"\n" } ?? ""), to: dir + "/vaktpost.toml")
    var options = RunOptions(configPath: dir + "/vaktpost.toml", socketPath: socket, auditLog: dir + "/audit.log")
    adjust(&options)
    return try HubDaemon(options: options, logger: logger)
}

/// What a daemon logs, kept: for tests of what the journal says.
final class Journal: Sendable {
    let lines = Mutex<[String]>([])
    var logger: Logger { Logger(label: "test") { _ in Handler(journal: self) } }
    var text: String { lines.withLock { $0.joined(separator: "\n") } }

    struct Handler: LogHandler {
        let journal: Journal
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { journal.lines.withLock { $0.append("\(event.level) \(event.message)") } }
    }
}

/// The config of a hub with a bed pad `bed` and its rule `night-bed` (not back in bed within
/// 30 minutes, all day unless `window` says), in UTC, written to `dir`/vaktpost.toml; its path.
func writeBedHubConfig(_ dir: String, outbox: String? = nil, window: String = "00:00-23:59") throws -> String {
    try write("""
        [hub]
        id = "hub-0001"
        timezone = "UTC"
        [[sensors]]
        id = "bed"
        role = "bed"
        room = "bedroom"
        transport = "enocean"
        sender = "01825DAB"
        eep = "A5-07-01"
        [[rules]]
        id = "night-bed"
        kind = "not-back-in-bed"
        sensor = "bed"
        window = "\(window)"
        after = "30m"
        [outbox]
        path = "\(outbox ?? dir + "/outbox.sqlite")"
        """, to: dir + "/vaktpost.toml")
    return dir + "/vaktpost.toml"
}

/// The bed pad of `writeBedHubConfig` (A5-07-01 occupancy) saying occupied or vacant.
@Sendable func bedPad(_ occupied: Bool) -> ESP3Telegram {
    ESP3Telegram(ESP3Packet(type: 1, data: [0xA5, 0x55, 0x00, occupied ? 0xFF : 0x00, 0x08, 0x01, 0x82, 0x5D, 0xAB, 0x00],
                            optional: [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 60, 0x00]))
}
