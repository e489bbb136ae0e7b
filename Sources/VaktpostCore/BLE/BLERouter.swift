/// What one advertisement meant: who sent it, what it said, and which configured sensor (if any)
/// it was. `scan` shows these; the agent forwards `reading` to the rule engine.
public struct BLEHeard: Equatable, Sendable {
    public var address: String
    public var rssi: Int?
    public var localName: String?
    public var sensor: SensorID?
    public var packet: BTHomePacket?
    public var rejection: BTHomeRejection?
    /// Only for a configured sensor whose packet was accepted: a refused packet proves nothing,
    /// not even that the sensor is alive.
    public var reading: Reading?
}

/// Routes advertising reports to configured BLE sensors by address, decoding BTHome with each
/// device's history (packet ids, encryption counters) kept here and saved by the caller.
public struct BLERouter: Sendable {
    let sensors: [String: SensorConfig]
    public var histories: [String: BTHomeHistory]

    public init(sensors: [SensorConfig], histories: [String: BTHomeHistory] = [:]) {
        self.sensors = Dictionary(uniqueKeysWithValues: sensors.compactMap { s in s.ble.map { ($0.address, s) } })
        self.histories = histories
    }

    public mutating func handle(_ report: AdvertisingReport, at time: WallTime, decrypt: BTHome.Decrypt) -> BLEHeard {
        let ad = AdvertisingData(report.data)
        let sensor = sensors[report.address]
        var heard = BLEHeard(address: report.address, rssi: report.rssi, localName: ad.localName, sensor: sensor?.id)
        guard let serviceData = ad.bthome else { return heard }
        var history = histories[report.address] ?? BTHomeHistory()
        switch BTHome.decode(serviceData: serviceData, mac: report.address, key: sensor?.ble?.bthomeKey, at: time, history: &history, decrypt: decrypt) {
        case .success(let packet):
            histories[report.address] = history
            heard.packet = packet
            if let sensor, let binding = sensor.ble {
                heard.reading = Reading(sensor: sensor.id, receivedAt: time, values: BTHomeBinding.values(packet, for: sensor, field: binding.field, rssi: report.rssi))
            }
        case .failure(let reason):
            heard.rejection = reason
        }
        return heard
    }

    /// Forgets what is kept of the sender at `address` (counter, packet id, last advertisement),
    /// so that its next packet is taken as a first one; returns what was kept.
    public mutating func forget(_ address: String) -> BTHomeHistory? {
        histories.removeValue(forKey: address)
    }
}

extension BTHomeHistory {
    /// The saved form, one object per device address.
    public static func json(_ histories: [String: BTHomeHistory]) -> JSONValue {
        .object(histories.sorted { $0.key < $1.key }.map { address, h in
            (address, .object(dropping: [
                ("lastCounter", h.lastCounter.map { .int(Int64($0)) }),
                ("lastPacketId", h.lastPacketID.map { .int(Int64($0)) }),
                ("lastAcceptedAt", h.lastAcceptedAt.map { .int($0.nanosecondsSinceEpoch) }),
                ("lastAdvertisement", h.lastAdvertisement.map { .string(Hex.string($0)) }),
                ("sameSince", h.sameSince.map { .int($0.nanosecondsSinceEpoch) }),
            ]))
        })
    }

    public static func histories(from json: JSONValue) -> [String: BTHomeHistory]? {
        guard let fields = json.objectFields else { return nil }
        var out: [String: BTHomeHistory] = [:]
        for (address, h) in fields {
            out[address] = BTHomeHistory(
                lastCounter: h["lastCounter"]?.intValue.flatMap { UInt32(exactly: $0) },
                lastPacketID: h["lastPacketId"]?.intValue.flatMap { UInt8(exactly: $0) },
                lastAcceptedAt: h["lastAcceptedAt"]?.intValue.map { WallTime(nanosecondsSinceEpoch: $0) },
                lastAdvertisement: h["lastAdvertisement"]?.stringValue.flatMap(Hex.bytes),
                sameSince: h["sameSince"]?.intValue.map { WallTime(nanosecondsSinceEpoch: $0) })
        }
        return out
    }
}
