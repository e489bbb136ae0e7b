import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The repository's root, from this file's place in it.
public let repositoryRoot: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}()

/// A throwaway dev PKI (deploy/pki.sh) for the whole test run: ca, server, hub-0001, hub-0002,
/// other-ca, expired-server, wrong-host-server, server.pin, other.pin.
public let testPKI: String = {
    let dir = NSTemporaryDirectory() + "vaktpost-pki-\(getpid())"
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/bash")
    p.arguments = [repositoryRoot + "/deploy/pki.sh", dir, "hub-0001", "hub-0002"]
    p.standardOutput = FileHandle.nullDevice
    try! p.run()
    p.waitUntilExit()
    precondition(p.terminationStatus == 0, "deploy/pki.sh failed")
    return dir
}()

/// A built executable of this package: `swift test` puts it beside the test bundle.
public func builtExecutable(_ name: String) -> String {
    let exe = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/")
    let dir = exe.deletingLastPathComponent()
    let here = dir.appendingPathComponent(name).path
    return FileManager.default.isExecutableFile(atPath: here) ? here : dir.deletingLastPathComponent().appendingPathComponent(name).path
}

/// The reference receiver (`vaktpost-receiver`) as a process on loopback, over the test PKI:
/// the platform every uplink test talks to.
public final class ReceiverProcess: @unchecked Sendable {
    public private(set) var process = Process()
    public private(set) var port = 0
    public private(set) var adminPort = 0
    public let directory: String
    let cert: String
    let arguments: [String]

    /// `cert`: which server certificate of the PKI it presents. `arguments`: more options
    /// (`--ack-after 1`, `--heartbeat-sec 30`, `--http1-only`, ...).
    public init(cert: String = "server", arguments: [String] = []) throws {
        directory = NSTemporaryDirectory() + "vaktpost-receiver-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.cert = cert
        self.arguments = arguments
        try launch(port: 0, adminPort: 0)
    }

    func launch(port: Int, adminPort: Int) throws {
        let portFile = directory + "/ports"
        try? FileManager.default.removeItem(atPath: portFile)
        process = Process()
        process.executableURL = URL(fileURLWithPath: builtExecutable("vaktpost-receiver"))
        process.arguments = ["--cert", "\(testPKI)/\(cert).pem", "--key", "\(testPKI)/\(cert).key", "--client-ca", "\(testPKI)/ca.pem",
                             "--db", directory + "/receiver.sqlite", "--port", "\(port)", "--admin-port", "\(adminPort)", "--port-file", portFile] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        for _ in 0..<1000 {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8) {
                let p = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int($0) }
                if p.count == 2 {
                    (self.port, self.adminPort) = (p[0], p[1])
                    return
                }
            }
            usleep(10_000)
        }
        throw ReceiverError("vaktpost-receiver did not start (is it built? \(builtExecutable("vaktpost-receiver")))")
    }

    /// SIGKILL, as a crash or power cut would; the database stays.
    public func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// A crash and a start on the same ports and database (or, `forgetting`, a new empty one:
    /// a platform that lost what it had).
    public func restart(forgetting: Bool = false) throws {
        kill()
        if forgetting {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: directory + "/receiver.sqlite" + suffix) }
        }
        for _ in 0..<100 {
            do { return try launch(port: port, adminPort: adminPort) } catch { usleep(50_000) }
        }
        try launch(port: port, adminPort: adminPort)
    }

    deinit {
        kill()
        try? FileManager.default.removeItem(atPath: directory)
    }

    public var url: String { "https://localhost:\(port)" }

    /// Calls the admin API (plain HTTP on loopback) and returns the decoded JSON.
    @discardableResult
    public func admin(_ method: String, _ path: String, _ body: String? = nil) throws -> Any {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(adminPort)\(path)")!)
        request.httpMethod = method
        request.httpBody = body.map { Data($0.utf8) }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: (Data?, (any Error)?) = (nil, nil)
        URLSession.shared.dataTask(with: request) { data, _, error in
            result = (data, error)
            done.signal()
        }.resume()
        done.wait()
        if let error = result.1 { throw error }
        return try JSONSerialization.jsonObject(with: result.0 ?? Data())
    }

    /// Sets fault switches: `["downForSec": 30, "failStatus": 503, "retryAfterSec": 1, "scope": "batches"]`.
    public func faults(_ switches: [String: Any]) throws {
        try admin("POST", "/api/faults", String(decoding: try JSONSerialization.data(withJSONObject: switches), as: UTF8.self))
    }

    /// Every stored event in arrival order (hubId, eventId, seq, class, type, state, lane), and the
    /// repeats the receiver answered as duplicates.
    public func arrivals() throws -> (events: [[String: Any]], duplicates: Int, heartbeats: Int) {
        let json = try admin("GET", "/api/arrivals") as? [String: Any] ?? [:]
        return (json["arrivals"] as? [[String: Any]] ?? [], json["duplicates"] as? Int ?? -1, json["heartbeats"] as? Int ?? -1)
    }
}

public struct ReceiverError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Polls until `done` or the time is up; the result of the last poll.
public func waitUntil(_ seconds: Double, _ done: () throws -> Bool) rethrows -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if try done() { return true }
        usleep(50_000)
    }
    return try done()
}

/// Runs a program to its end; its exit status and everything it printed (stdout and stderr).
@discardableResult
public func runProgram(_ tool: String, _ arguments: [String]) throws -> (status: Int32, out: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: tool)
    p.arguments = arguments
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, text)
}
