import VaktpostCore
import VaktpostPosix

/// Where each BTHome sender's last counter and packet id survive a restart, so an old packet
/// replayed after the agent restarted is still refused. Written atomically (tmp, fsync, rename).
public struct BTHomeHistoryStore: Sendable {
    public let path: String

    public static let defaultPath = "/var/lib/vaktpost/bthome.json"

    public init(path: String) { self.path = path }

    public func save(_ histories: [String: BTHomeHistory]) throws(PosixError) {
        try Files.writeAtomically(path, Array((BTHomeHistory.json(histories).serialized + "\n").utf8), mode: 0o600)
    }

    /// The saved histories; none on a first start. A damaged file is an error the caller reports
    /// (and then starts empty): it must not stop the agent from hearing its sensors.
    public func load() throws -> [String: BTHomeHistory] {
        let bytes: [UInt8]
        do {
            bytes = try Files.read(path)
        } catch {
            if error.isNotFound { return [:] }
            throw error
        }
        guard let histories = BTHomeHistory.histories(from: try JSONValue.parse(bytes: bytes)) else {
            throw RuleStateError(path: path, reason: "not a BTHome history object")
        }
        return histories
    }
}
