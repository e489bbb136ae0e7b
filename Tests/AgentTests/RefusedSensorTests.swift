import Foundation
import Synchronization
@testable import VaktpostPosix
import Testing
@testable import Agent
@testable import VaktpostCore

/// A daemon (not started) with an encrypted fall button at the bthome.io example's address and
/// key, and `more` config; `advert` hands it the button's service data at t0 + seconds.
func fallButtonHub(_ dir: String, more: String = "") throws -> (HubDaemon, Journal, (String, Int64) -> Void) {
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
        \(more)
        [outbox]
        path = "\(dir)/outbox.sqlite"
        """, to: dir + "/vaktpost.toml")
    let journal = Journal()
    let d = try HubDaemon(options: RunOptions(configPath: dir + "/vaktpost.toml", socketPath: dir + "/ctl.sock", auditLog: dir + "/audit.log"),
                          logger: journal.logger)
    return (d, journal, { serviceData, seconds in
        let bytes = Hex.bytes(serviceData)!
        d.heardBLE(AdvertisingReport(address: "54:48:E6:8F:80:A5", addressType: .public, rssi: -60, extended: false,
                                     data: [UInt8(bytes.count + 3), 0x16, 0xD2, 0xFC] + bytes),
                   at: WallTime(secondsSinceEpoch: 1_790_000_000 + seconds))
    })
}

/// A configured BLE sensor whose packets are all refused (a wrong key, a counter gone back
/// after a battery change) is not heard, and used to be reported only as `sensor.silent`, after
/// its supervision time and without the reason. The journal, `status`, the heartbeat and a
/// `sensor.refused` event say it.
@Test func aSensorWhosePacketsAreRefusedSaysWhy() throws {
    try withTemporaryDirectory { dir in
        let (d, journal, advert) = try fallButtonHub(dir)
        defer { d.stop(.rules) }
        advert("4001643a01", 0)  // plaintext from a sensor that has a key
        advert("4001643a02", 5)
        let refused = try #require(d.health().sensors.first?.refused)
        #expect(refused.count == 2)
        #expect(refused.since == WallTime(secondsSinceEpoch: 1_790_000_000))
        #expect(refused.reason.contains("plaintext from a sensor that has a key"))
        #expect(journal.text.components(separatedBy: "the packets of sensor fall are refused").count == 2, "said once: \(journal.text)")
        let heartbeat = HealthSnapshot(swVersion: "t", configVersion: nil, uptime: .zero, sensors: d.health().sensors, receivers: [], diskFreePercent: nil)
        #expect(heartbeat.heartbeat(hubID: "h", bootID: "b", boottimeNanoseconds: 0, now: WallTime(secondsSinceEpoch: 1_790_000_010), zone: .utc)
            .serialized.contains("\"refused\":{\"reason\":"))

        // The platform is told at the first refusal, with the reason: the sensor is not heard.
        func refusals() -> [JSONValue] { d.core.withLock { $0.recent.map(\.json) }.filter { $0["type"]?.stringValue == "sensor.refused" } }
        let raised = refusals()
        #expect(raised.map { $0["state"]?.stringValue } == ["active"])
        #expect(raised.first?["data"]?["reason"]?.stringValue?.contains("plaintext from a sensor that has a key") == true)
        #expect(raised.first?["deviceId"]?.stringValue == "fall")

        advert("41e445f3c9962b332211006c7c4519", 10)  // the bthome.io example, under the key
        #expect(d.health().sensors.first?.refused == nil, "heard again")
        #expect(journal.text.contains("sensor fall is heard again after 2 refused packets"))
        // A repeat of the packet just taken is no refusal of the sensor.
        advert("41e445f3c9962b332211006c7c4519", 11)
        #expect(d.health().sensors.first?.refused == nil)
        #expect(refusals().count == 1, "cleared a minute after the last refusal, not at the first packet taken")
        d.core.withLock { c in
            d.engine.advance(&c.state, to: WallTime(secondsSinceEpoch: 1_790_000_065), events: &c.factory)
            d.commit(&c)
        }
        let cleared = refusals().dropFirst()
        #expect(cleared.map { $0["state"]?.stringValue } == ["cleared"])
        #expect(cleared.first?["correlationId"] == raised.first?["eventId"])
        #expect(cleared.first?["data"]?["refusedPackets"]?.intValue == 2)

        // Refused again soon after, then taken: the journal said it 100 s ago and does not
        // again (packets taken among refused ones would fill it), nor that it is heard again.
        advert("4001643a03", 100)
        advert("41e445f3c9962b332211006c7c4519", 110)
        func said(_ text: String) -> Int { journal.text.components(separatedBy: text).count - 1 }
        #expect(said("the packets of sensor fall are refused") == 1)
        #expect(said("is heard again") == 1)
        advert("4001643a04", 700)
        #expect(said("the packets of sensor fall are refused") == 2, "ten minutes on, said again")
        advert("41e445f3c9962b332211006c7c4519", 710)
        #expect(said("is heard again") == 2)
    }
}

/// `vaktpost reset-counter`: a sensor whose counter went back (a battery change) is refused
/// as a replay until the agent forgets the counter it kept; then its next packet is taken.
/// Deleting the entry in bthome.json did not do it while the agent ran: it writes back what it holds.
@Test func resetCounterLetsTheNextPacketThrough() throws {
    try withTemporaryDirectory { dir in
        let (d, journal, advert) = try fallButtonHub(dir, more: """
            [[sensors]]
            id = "door"
            role = "door"
            room = "hallway"
            transport = "enocean"
            sender = "0180A5D2"
            eep = "D5-00-01"
            """)
        defer { d.stop(.rules) }
        advert("41e445f3c9962b332211006c7c4519", 0)  // counter 1,122,867
        advert("41723d3035fb88322211009e7414c0", 5)  // counter 1,122,866: gone back
        #expect(d.health().sensors.first { $0.deviceID == "fall" }?.refused?.reason.contains("older than the last accepted") == true)

        let answer = d.handle("reset-counter", .object([("command", .string("reset-counter")), ("sensor", .string("fall"))]))
        #expect(answer["error"] == nil)
        #expect(answer["address"]?.stringValue == "54:48:E6:8F:80:A5")
        #expect(answer["forgot"]?["lastCounter"]?.intValue == 1_122_867)
        #expect(DaemonReports.resetCounter(answer).hasPrefix("sensor fall (54:48:E6:8F:80:A5): forgot its last encryption counter 1122867; its next packet is taken"))
        #expect(journal.text.contains("sensor fall (54:48:E6:8F:80:A5): its BTHome history (counter 1122867) forgotten, asked by vaktpost reset-counter, the control socket"))

        advert("41723d3035fb88322211009e7414c0", 70)
        #expect(d.health().sensors.first { $0.deviceID == "fall" }?.refused == nil, "taken")
        #expect(d.core.withLock { $0.ble.histories["54:48:E6:8F:80:A5"]?.lastCounter } == 1_122_866)
        // Once more: nothing kept, said so.
        _ = d.core.withLock { $0.ble.forget("54:48:E6:8F:80:A5") }
        let again = d.handle("reset-counter", .object([("sensor", .string("fall"))]))
        #expect(again["forgot"] == nil)
        #expect(DaemonReports.resetCounter(again).contains("nothing was kept for it"))

        #expect(d.handle("reset-counter", .object([("sensor", .string("bed"))]))["error"]?.stringValue?.contains("no sensor bed is configured") == true)
        #expect(d.handle("reset-counter", .object([("sensor", .string("door"))]))["error"]?.stringValue?.contains("not a BLE sensor") == true)
        #expect(d.handle("reset-counter", .object([]))["error"]?.stringValue == "sensor missing")
    }
}

/// Forgetting a counter lets one replayed packet through: root and the agent's user only, as
/// for `shutdown`; the vaktpost group may look and test, not this.
@Test func resetCounterIsForRootAndTheAgentsUserOnly() {
    let group = PeerCredentials(pid: 1, uid: 4242, gid: getgid())
    #expect(HubDaemon.mayUse(group, command: "status"))
    #expect(!HubDaemon.mayUse(group, command: "reset-counter"))
    #expect(HubDaemon.mayUse(PeerCredentials(pid: 1, uid: 0, gid: 0), command: "reset-counter"))
}

/// An EnOcean sensor configured with an eep of another family than it sends (a rocker
/// configured as a bed contact) was dropped without a word: `vaktpost check` said "nothing
/// heard: check its range" while the technician pressed it. It is refused with the reason, as a
/// BLE sensor's packets are, and the check says which eep to look at.
@Test func anEnOceanSensorWhoseTelegramsDoNotFitItsEEPSaysWhy() throws {
    try withTemporaryDirectory { dir in
        let (d, journal, _) = try fallButtonHub(dir, more: """
            [[sensors]]
            id = "bed"
            role = "bed"
            room = "bedroom"
            transport = "enocean"
            sender = "0180A5D2"
            eep = "D5-00-01"
            """)
        defer { d.stop(.rules) }
        func bed() -> HealthSnapshot.SensorHealth? { d.health().sensors.first { $0.deviceID == "bed" } }
        func telegram(_ data: [UInt8], at seconds: Int64) {
            d.heardSerial(ESP3Telegram(ESP3Packet(type: 1, data: data + [0x01, 0x80, 0xA5, 0xD2, 0x00], optional: [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 60, 0x00])),
                          at: WallTime(secondsSinceEpoch: 1_790_000_000 + seconds), receiver: "usb300")
        }
        telegram([0xD5, 0x00], at: 0)  // a teach-in: sent by every contact, refused by none
        #expect(bed()?.refused == nil)
        telegram([0xF6, 0x50], at: 1)  // a rocker press
        let refused = try #require(bed()?.refused)
        #expect(refused.reason == "a rocker switch (RPS, F6) telegram does not fit its eep D5-00-01")
        #expect(journal.text.contains("the packets of sensor bed are refused: a rocker switch (RPS, F6) telegram does not fit its eep D5-00-01; it is not heard until one is taken. Set its eep"))
        let raised = d.core.withLock { $0.recent.map(\.json) }.filter { $0["type"]?.stringValue == "sensor.refused" }
        #expect(raised.map { $0["state"]?.stringValue } == ["active"])
        var list = Checklist()
        list.sensorChecks(d.config, d.status())
        #expect(list.text.contains("FAIL  sensor bed heard: 1 packets refused since"), "\(list.text)")
        #expect(list.text.contains("set its eep to the sensor's profile"), "\(list.text)")

        telegram([0xD5, 0x09], at: 5)  // a contact's data telegram: closed, occupied
        #expect(bed()?.refused == nil, "heard")
        #expect(bed()?.state == "occupied")
    }
}
