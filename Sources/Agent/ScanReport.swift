import VaktpostCore

/// What `vaktpost scan --ble` has heard so far: one line per device, the latest of each.
public struct ScanReport: Sendable {
    public private(set) var devices: [String: (heard: BLEHeard, count: Int)] = [:]
    public private(set) var order: [String] = []

    public init() {}

    public mutating func add(_ heard: BLEHeard) {
        if devices[heard.address] == nil { order.append(heard.address) }
        var entry = devices[heard.address] ?? (heard, 0)
        // Keep the last decode that said something new, so that a repeat (refused, or the same
        // packet again with its press taken out) does not hide the press the technician made.
        let new = heard.packet.map { !$0.isRetransmission } ?? false
        if new || entry.heard.packet == nil { entry.heard = heard } else { entry.heard.rssi = heard.rssi }
        entry.count += 1
        devices[heard.address] = entry
    }

    /// BTHome devices and configured sensors first, then the rest.
    var sorted: [(heard: BLEHeard, count: Int)] {
        order.map { devices[$0]! }.sorted { a, b in
            let ra = a.heard.sensor != nil ? 0 : (a.heard.packet != nil ? 1 : 2)
            let rb = b.heard.sensor != nil ? 0 : (b.heard.packet != nil ? 1 : 2)
            return ra < rb
        }
    }

    public var text: String {
        var lines = ["ADDRESS            RSSI  SEEN  SENSOR        NAME          BTHOME"]
        for (h, count) in sorted {
            let decode = h.packet.map { $0.json.serialized } ?? h.rejection.map { "refused: \($0)" } ?? "(not BTHome)"
            lines.append("\(padded(h.address, 18)) \(padded(h.rssi.map(String.init) ?? "-", 5)) \(padded(String(count), 5)) \(padded(h.sensor?.rawValue ?? "-", 13)) \(padded(h.localName ?? "-", 13)) \(decode)")
        }
        let configured = devices.values.filter { $0.heard.sensor != nil }.count
        lines.append("\(devices.count) devices heard, \(configured) of them configured sensors")
        return lines.joined(separator: "\n") + "\n"
    }

    public var json: JSONValue {
        .array(sorted.map { h, count in
            .object([
                ("address", .string(h.address)), ("rssi", h.rssi.map { .int(Int64($0)) } ?? .null), ("seen", .int(Int64(count))),
                ("sensor", h.sensor.map { .string($0.rawValue) } ?? .null), ("name", h.localName.map(JSONValue.string) ?? .null),
                ("bthome", h.packet?.json ?? .null), ("refused", h.rejection.map { .string($0.description) } ?? .null),
            ])
        })
    }

}
