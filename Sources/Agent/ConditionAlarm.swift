import BLEInput
import SerialInput
import VaktpostCore

/// A hub condition reported as one technical event: raised once with its reason, cleared (same
/// correlation id) when it ends. `ble.adapter_unavailable` and `serial.receiver_unplugged` are two.
public struct ConditionAlarm: Sendable {
    public let type: EventType
    /// What the condition is about, on both events: `adapter: hci0`, `receiver: usb300`.
    let subject: [(String, JSONValue)]
    public private(set) var active: EventID?

    public init(_ type: EventType, subject: [(String, JSONValue)]) {
        self.type = type
        self.subject = subject
    }

    public mutating func raise(_ reason: String, at time: WallTime, events: inout EventFactory, data: [(String, JSONValue)] = []) {
        guard active == nil else { return }
        active = events.hubEvent(type, .active, at: time, data: subject + [("reason", .string(reason))] + data)
    }

    public mutating func clear(at time: WallTime, events: inout EventFactory, data: [(String, JSONValue)] = []) {
        guard let id = active else { return }
        active = nil
        events.hubEvent(type, .cleared, at: time, correlation: id, data: subject + data)
    }
}

extension ConditionAlarm {
    public static func bleAdapter(_ adapter: String) -> ConditionAlarm {
        ConditionAlarm(.bleAdapterUnavailable, subject: [("adapter", .string(adapter))])
    }

    public static func serialReceiver(_ name: String) -> ConditionAlarm {
        ConditionAlarm(.serialReceiverUnplugged, subject: [("receiver", .string(name))])
    }

    public mutating func handle(_ condition: HCIScanner.Condition, at time: WallTime, events: inout EventFactory) {
        switch condition {
        case .unavailable(let reason): raise(reason, at: time, events: &events)
        case .available: clear(at: time, events: &events)
        }
    }

    public mutating func handle(_ condition: SerialReceiver.Condition, at time: WallTime, events: inout EventFactory) {
        switch condition {
        case .unplugged(let reason): raise(reason, at: time, events: &events)
        case .available(let path, let version, let baseID):
            clear(at: time, events: &events, data: [("path", .string(path))]
                + (version.map { [("version", .string($0))] } ?? []) + (baseID.map { [("baseId", .string($0))] } ?? []))
        }
    }
}
