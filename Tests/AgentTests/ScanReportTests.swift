import Agent
import Testing
@testable import VaktpostCore

/// `vaktpost scan --ble` shows the latest thing each device said: a technician pressing a
/// button must see the press, not the copies the button sends after it.
@Suite struct ScanReportTests {
    func heard(_ bytes: [UInt8], at seconds: Int64, history: inout BTHomeHistory, rssi: Int) throws -> BLEHeard {
        let packet = try BTHome.decode(serviceData: bytes, mac: "3C:2E:F5:12:34:56", key: nil, at: WallTime(secondsSinceEpoch: 1_790_000_000 + seconds),
                                       history: &history, decrypt: { _, _, _, _ in nil }).get()
        return BLEHeard(address: "3C:2E:F5:12:34:56", rssi: rssi, packet: packet)
    }

    @Test func aPressStaysShownThroughItsCopies() throws {
        var history = BTHomeHistory()
        var report = ScanReport()
        report.add(try heard(Hex.bytes("4001643a01")!, at: 0, history: &history, rssi: -60))  // the press
        report.add(try heard(Hex.bytes("4001643a01")!, at: 1, history: &history, rssi: -58))  // its copy
        #expect(report.text.contains("\"button\":\"press\""), "\(report.text)")
        #expect(report.text.contains("-58"), "the signal is the latest")
        #expect(report.devices.first?.value.count == 2)
        report.add(try heard(Hex.bytes("4001633a00")!, at: 2, history: &history, rssi: -57))  // news: battery 99 %, no press
        #expect(report.text.contains("\"battery\":99"), "\(report.text)")
    }
}
