import Testing
@testable import VaktpostCore

/// Hex with spaces between bytes, as the research notes print frames.
func bytes(_ hex: String) -> [UInt8] { Hex.bytes(String(hex.filter { !$0.isWhitespace }))! }

@Suite struct HCIParsingTests {
    @Test func addressesAsTypedBecomeTheFormReportsCarry() {
        #expect(HCI.canonicalAddress("3c:2e:f5:12:34:56") == "3C:2E:F5:12:34:56")
        #expect(HCI.canonicalAddress("3C:2E:F5:12:34") == nil)
        #expect(HCI.canonicalAddress("zz:2E:F5:12:34:56") == nil)
        #expect(HCI.canonicalAddress("3C:2E:F5:12:34:5") == nil)
        #expect(HCI.canonicalAddress("3C-2E-F5-12-34-56") == nil)
    }

    // research/ble.md §1.4: the bthome.io payload from A4:C1:38:8D:18:B2, public address, RSSI -60.
    let legacy = bytes("3e 26 02 01 00 00 b2 18 8d 38 c1 a4 1a 02 01 06 0b 09 44 49 59 2d 73 65 6e 73 6f 72 0a 16 d2 fc 40 02 c4 09 03 bf 13 c4")
    let extended = bytes("3e 34 0d 01 13 00 00 b2 18 8d 38 c1 a4 01 00 ff 7f c4 00 00 00 00 00 00 00 00 00 1a 02 01 06 0b 09 44 49 59 2d 73 65 6e 73 6f 72 0a 16 d2 fc 40 02 c4 09 03 bf 13")

    @Test func legacyAndExtendedReportsCarryTheSameAdvertisement() throws {
        for event in [legacy, extended] {
            let reports = try HCI.advertisingReports(event).get()
            #expect(reports.count == 1)
            #expect(reports[0].address == "A4:C1:38:8D:18:B2")
            #expect(reports[0].addressType == .public)
            #expect(reports[0].rssi == -60)
            let ad = AdvertisingData(reports[0].data)
            #expect(ad.flags == 0x06)
            #expect(ad.localName == "DIY-sensor")
            #expect(ad.bthome == bytes("40 02 c4 09 03 bf 13"))
        }
        #expect(try HCI.advertisingReports(extended).get()[0].extended)
    }

    @Test func severalReportsInOneEvent() throws {
        // Two legacy reports back to back, the second with no data and RSSI "not available".
        let event = bytes("3e 19 02 02") + bytes("00 00 b2 18 8d 38 c1 a4 03 02 01 06 c4") + bytes("04 01 01 02 03 04 05 c6 00 7f")
        let reports = try HCI.advertisingReports(event).get()
        #expect(reports.map(\.address) == ["A4:C1:38:8D:18:B2", "C6:05:04:03:02:01"])
        #expect(reports[1].addressType == .random)
        #expect(reports[1].rssi == nil)
        #expect(reports[1].data.isEmpty)
    }

    @Test(arguments: [
        ("3e", HCIError.tooShort),
        ("3e 05 02 01 00", HCIError.lengthMismatch(declared: 5, actual: 3)),
        ("3e 06 02 01 00 00 b2 18", HCIError.reportOverrun(report: 1)),
        // The data length says 31 bytes; the event holds 2.
        ("3e 0d 02 01 00 00 b2 18 8d 38 c1 a4 1f 02 01", HCIError.reportOverrun(report: 1)),
        ("3e 0c 02 02 00 00 b2 18 8d 38 c1 a4 00 c4", HCIError.reportOverrun(report: 2)),
    ])
    func truncatedAndWrongLengthsAreTypedErrors(hex: String, error: HCIError) {
        #expect(HCI.advertisingReports(bytes(hex)) == .failure(error))
    }

    @Test func otherEventsYieldNoReportsAndH4IsChecked() throws {
        #expect(try HCI.advertisingReports(bytes("0e 04 01 0c 20 00")).get().isEmpty)  // Command Complete
        #expect(try HCI.advertisingReports(bytes("3e 03 14 00 00")).get().isEmpty)  // another LE subevent
        #expect(HCI.eventFromH4(bytes("04 0e 00")) == .success(bytes("0e 00")))
        #expect(HCI.eventFromH4(bytes("02 00 00")) == .failure(.notAnEvent(2)))
    }

    @Test func incompleteExtendedDataIsSkipped() throws {
        var event = extended
        event[4] = 0x33  // data status 01: more to come
        #expect(try HCI.advertisingReports(event).get().isEmpty)
    }

    @Test func adStructuresStopAtALengthPastTheEnd() {
        let ad = AdvertisingData(bytes("02 01 06 05 ff a9 0b 01 02 0a 16 d2 fc"))
        #expect(ad.flags == 6)
        #expect(ad.manufacturerData[0x0BA9] == [1, 2])
        #expect(ad.malformed)
        #expect(ad.bthome == nil)
    }
}

@Suite struct BTSnoopTests {
    // research/ble.md §1.6: a monitor-format file with one 40-byte event on hci0 at Unix 1700000000.
    @Test func theComputedExampleReads() throws {
        let file = bytes("62 74 73 6e 6f 6f 70 00 00 00 00 01 00 00 07 d1") + bytes("00 00 00 28 00 00 00 28 00 00 00 03 00 00 00 00 00 e2 e7 d7 27 4d c0 00")
            + bytes("3e 26 02 01 00 00 b2 18 8d 38 c1 a4 1a 02 01 06 0b 09 44 49 59 2d 73 65 6e 73 6f 72 0a 16 d2 fc 40 02 c4 09 03 bf 13 c4")
        let records = try BTSnoop.events(file).get()
        #expect(records.count == 1)
        #expect(records[0].time == WallTime(secondsSinceEpoch: 1_700_000_000))
        #expect(try HCI.advertisingReports(records[0].event).get().first?.address == "A4:C1:38:8D:18:B2")
    }

    @Test func writeAndReadRoundTrip() throws {
        let records = [BTSnoopRecord(time: WallTime(secondsSinceEpoch: 1_790_000_000, nanoseconds: 123_000), event: bytes("0e 04 01 0c 20 00"))]
        #expect(try BTSnoop.events(BTSnoop.write(records)).get() == records)
    }

    @Test(arguments: [
        ("not a capture", BTSnoopError.notBTSnoop),
        ("62 74 73 6e 6f 6f 70 00 00 00 00 02 00 00 07 d1", BTSnoopError.unsupportedVersion(2)),
        ("62 74 73 6e 6f 6f 70 00 00 00 00 01 00 00 03 e9", BTSnoopError.unsupportedDatalink(1001)),
        ("62 74 73 6e 6f 6f 70 00 00 00 00 01 00 00 07 d1 00 00 00 28", BTSnoopError.truncatedRecord(offset: 16)),
    ])
    func damagedCapturesAreTypedErrors(hex: String, error: BTSnoopError) {
        let input = hex == "not a capture" ? Array(hex.utf8) : bytes(hex)
        #expect(BTSnoop.events(input) == .failure(error))
    }
}

@Suite struct BLESupervisorTests {
    let t0 = WallTime(secondsSinceEpoch: 1_790_000_000)

    @Test func aKernelWithoutBluetoothIsRaisedAtOnceAndRetriedWithBackoff() {
        var s = BLESupervisor(silentAfter: .seconds(60))
        #expect(s.openFailed("no Bluetooth", certain: true) == [.raise(reason: "no Bluetooth"), .reopen(after: .zero)])
        #expect(s.openFailed("no Bluetooth", certain: true) == [.reopen(after: .seconds(1))])
        #expect(s.openFailed("no Bluetooth", certain: true) == [.reopen(after: .seconds(2))])
        for _ in 0..<10 { _ = s.openFailed("no Bluetooth", certain: true) }
        #expect(s.openFailed("no Bluetooth", certain: true) == [.reopen(after: .seconds(30))])
    }

    @Test func anUncertainFailureIsRetriedOnceBeforeItIsRaised() {
        var s = BLESupervisor(silentAfter: .seconds(60))
        #expect(s.openFailed("EIO", certain: false) == [.reopen(after: .zero)])
        #expect(s.openFailed("EIO", certain: false) == [.raise(reason: "EIO"), .reopen(after: .seconds(1))])
    }

    @Test func aSilentScanIsRestartedThenRaisedAndClearedByTheNextReport() {
        var s = BLESupervisor(silentAfter: .seconds(60))
        #expect(s.scanStarted(at: t0) == [])
        #expect(s.tick(at: t0 + .seconds(59)) == [])
        #expect(s.tick(at: t0 + .seconds(60)) == [.restartScan])
        #expect(s.tick(at: t0 + .seconds(119)) == [])
        let actions = s.tick(at: t0 + .seconds(120))
        #expect(actions.count == 2)
        #expect(actions.last == .restartScan)
        guard case .raise(let reason)? = actions.first else { Issue.record("not raised"); return }
        #expect(reason.contains("no advertising reports for 2m"))
        #expect(s.tick(at: t0 + .seconds(180)) == [.restartScan])  // keeps trying, raises once
        #expect(s.reportReceived(at: t0 + .seconds(200)) == [.clear])
        #expect(s.reportReceived(at: t0 + .seconds(201)) == [])
        #expect(s.nextTick() == t0 + .seconds(261))
    }

    @Test func aScanThatCannotHearIsRaisedWhenItStarts() {
        var s = BLESupervisor(silentAfter: .seconds(60))
        #expect(s.scanStarted(at: t0, deafBecause: "lacks CAP_NET_RAW") == [.raise(reason: "lacks CAP_NET_RAW")])
        #expect(s.reportReceived(at: t0 + .seconds(1)) == [.clear])
    }
}

/// Found by fuzzing: a timestamp no capture can have is an error, not an overflow.
@Test func aBTSnoopRecordWithAnImpossibleTimeIsAnError() {
    let file = bytes("62 74 73 6e 6f 6f 70 00 00 00 00 01 00 00 07 d1") + bytes("00 00 00 02 00 00 00 02 00 00 00 03 00 00 00 00 80 00 00 00 00 00 00 00") + bytes("0e 00")
    #expect(BTSnoop.events(file) == .failure(.impossibleTime(offset: 16)))
}
