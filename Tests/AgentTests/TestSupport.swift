#if canImport(Glibc)
import Glibc
#endif
import Logging
@testable import Agent
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
func buttonHub(_ dir: String, outbox: String, socket: String, serial: String? = nil) throws -> HubDaemon {
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
    return try HubDaemon(options: RunOptions(configPath: dir + "/vaktpost.toml", socketPath: socket, auditLog: dir + "/audit.log"),
                         logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
}
