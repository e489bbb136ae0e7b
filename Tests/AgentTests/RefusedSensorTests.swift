import Foundation
import Testing
@testable import Agent
@testable import VaktpostCore

/// A configured BLE sensor whose packets are all refused (a wrong key, a counter gone back
/// after a battery change) is not heard, and used to be reported only as `sensor.silent`, after
/// its supervision time and without the reason. The journal, `status` and the heartbeat say it.
@Test func aSensorWhosePacketsAreRefusedSaysWhy() throws {
    try withTemporaryDirectory { dir in
        try write("""
            [hub]
            id = "hub-0001"
            [[sensors]]
            id = "fall"
            role = "fall"
            room = "bathroom"
            transport = "ble"
            address = "54:48:E6:8F:80:A5"
            field = "button"
            bthome_key = "231d39c1d7cc1ab1aee224cd096db932"
            [outbox]
            path = "\(dir)/outbox.sqlite"
            """, to: dir + "/vaktpost.toml")
        let journal = Journal()
        let d = try HubDaemon(options: RunOptions(configPath: dir + "/vaktpost.toml", socketPath: dir + "/ctl.sock", auditLog: dir + "/audit.log"),
                              logger: journal.logger)
        defer { d.stop(.rules) }
        func advert(_ serviceData: String, at seconds: Int64) {
            let bytes = Hex.bytes(serviceData)!
            d.heardBLE(AdvertisingReport(address: "54:48:E6:8F:80:A5", addressType: .public, rssi: -60, extended: false,
                                         data: [UInt8(bytes.count + 3), 0x16, 0xD2, 0xFC] + bytes),
                       at: WallTime(secondsSinceEpoch: 1_790_000_000 + seconds))
        }
        advert("4001643a01", at: 0)  // plaintext from a sensor that has a key
        advert("4001643a02", at: 5)
        let refused = try #require(d.health().sensors.first?.refused)
        #expect(refused.count == 2)
        #expect(refused.since == WallTime(secondsSinceEpoch: 1_790_000_000))
        #expect(refused.reason.contains("plaintext from a sensor that has a key"))
        #expect(journal.text.components(separatedBy: "the packets of sensor fall are refused").count == 2, "said once: \(journal.text)")
        let heartbeat = HealthSnapshot(swVersion: "t", configVersion: nil, uptime: .zero, sensors: d.health().sensors, receivers: [], diskFreePercent: nil)
        #expect(heartbeat.heartbeat(hubID: "h", bootID: "b", boottimeNanoseconds: 0, now: WallTime(secondsSinceEpoch: 1_790_000_010), zone: .utc)
            .serialized.contains("\"refused\":{\"reason\":"))

        advert("41e445f3c9962b332211006c7c4519", at: 10)  // the bthome.io example, under the key
        #expect(d.health().sensors.first?.refused == nil, "heard again")
        #expect(journal.text.contains("sensor fall is heard again after 2 refused packets"))
        // A repeat of the packet just taken is no refusal of the sensor.
        advert("41e445f3c9962b332211006c7c4519", at: 11)
        #expect(d.health().sensors.first?.refused == nil)
    }
}
