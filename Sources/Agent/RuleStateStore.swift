import VaktpostCore
import VaktpostPosix

/// Where the rule engine's state survives a restart: an atomically replaced snapshot file
/// (write to a temporary name, fsync, rename), so a crash leaves either the old state or the
/// new one, never half of each. For `vaktpost replay`; the daemon commits its rule state in the
/// outbox, in the same transaction as the events it produced (`Outbox.append(_:ruleState:)`).
public struct RuleStateStore: Sendable {
    public let path: String

    public static let defaultPath = "/var/lib/vaktpost/rules.state.json"

    public init(path: String) { self.path = path }

    public func save(_ state: EngineState) throws(RuleStateError) {
        do {
            try Files.writeAtomically(path, Array((state.json.serialized + "\n").utf8), mode: 0o600)
        } catch {
            throw RuleStateError(path: path, reason: "\(error)")
        }
    }

    /// The saved state, or a fresh one when nothing was saved yet.
    public func load() throws(RuleStateError) -> EngineState {
        let bytes: [UInt8]
        do {
            bytes = try Files.read(path)
        } catch {
            if error.isNotFound { return EngineState() }
            throw RuleStateError(path: path, reason: "\(error)")
        }
        do {
            return try EngineState(json: JSONValue.parse(bytes: bytes))
        } catch {
            throw RuleStateError(path: path, reason: "\(error)")
        }
    }
}

public struct RuleStateError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "rule state \(path): \(reason)" }
}
