import BLEInput
import VaktpostCore

/// Turns the scanner's conditions into `ble.adapter_unavailable` events: raised once with the
/// reason, cleared (same correlation id) when reports flow again.
public struct BLEAdapterAlarm: Sendable {
    public private(set) var active: EventID?
    let adapter: String

    public init(adapter: String) { self.adapter = adapter }

    public mutating func handle(_ condition: HCIScanner.Condition, at time: WallTime, events: inout EventFactory) {
        switch condition {
        case .unavailable(let reason):
            guard active == nil else { return }
            active = events.hubEvent(.bleAdapterUnavailable, .active, at: time, data: [("adapter", .string(adapter)), ("reason", .string(reason))])
        case .available:
            guard let id = active else { return }
            active = nil
            events.hubEvent(.bleAdapterUnavailable, .cleared, at: time, correlation: id, data: [("adapter", .string(adapter))])
        }
    }
}
