import BLEInput
import SQLiteStore
import SerialInput
import Uplink
import VaktpostCore

/// What support staff ask first: which version runs here, on which libraries.
public enum AgentInfo {
    public static let version = "0.1.0"

    public struct Library: Sendable {
        public var name: String
        public var version: String
        /// Something the agent needs and this build lacks; nil when all is well.
        public var problem: String?
    }

    public static var libraries: [Library] {
        let curl = CurlLibrary.linked
        var curlProblem: String? = nil
        if curl.tlsBackend == nil { curlProblem = "built without TLS: the uplink cannot work; install libcurl4 (OpenSSL flavour)" }
        var udevProblem: String? = nil
        do { _ = try Udev() } catch { udevProblem = error.description }
        return [
            Library(name: "sqlite", version: SQLiteLibrary.version, problem: nil),
            Library(name: "libcurl", version: curl.version + (curl.tlsBackend.map { " (\($0)\(curl.supportsHTTP2 ? ", HTTP/2" : ""))" } ?? ""), problem: curlProblem),
            Library(name: "libcrypto", version: LibCrypto.version, problem: LibCrypto.hasAES128CCM ? nil : "no AES-128-CCM: encrypted BTHome sensors cannot be read"),
            Library(name: "libudev", version: udevProblem == nil ? "linked" : "unusable", problem: udevProblem),
        ]
    }

    public static var json: JSONValue {
        .object([
            ("version", .string(version)),
            ("libraries", .array(libraries.map { l in
                .object(dropping: [("name", .string(l.name)), ("version", .string(l.version)), ("problem", l.problem.map(JSONValue.string))])
            })),
        ])
    }
}
