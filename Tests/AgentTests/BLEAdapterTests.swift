#if canImport(Glibc)
import Glibc
#endif
import BLEInput
import SerialInput
import Synchronization
import Testing
@testable import Agent
import VaktpostCore

/// This machine's kernel has no Bluetooth: `socket(AF_BLUETOOTH)` fails with EAFNOSUPPORT.
/// The scanner must say so quickly, as the technical event, and keep running (and retrying).
@Suite struct BLEAdapterTests {
    func socketFailsHere() -> Bool {
        let fd = socket(AF_BLUETOOTH, Int32(SOCK_RAW.rawValue), 1)
        if fd >= 0 { close(fd); return false }
        return errno == EAFNOSUPPORT
    }

    @Test func aKernelWithoutBluetoothRaisesTheTechnicalEventWithinTheConfiguredTime() throws {
        try #require(socketFailsHere(), "this test is for a machine without Bluetooth (as CI is)")
        let conditions = Mutex<[HCIScanner.Condition]>([])
        let scanner = HCIScanner(
            options: .init(adapter: "hci0", mode: .raw, silentAfter: .seconds(5)),
            now: { WallTime(nanosecondsSinceEpoch: Int64(clock_gettime_ns())) },
            onEvent: { _, _ in }, onCondition: { c in conditions.withLock { $0.append(c) } })
        let started = clock_gettime_ns()
        scanner.start()
        while clock_gettime_ns() - started < 5_000_000_000 && conditions.withLock({ $0.isEmpty }) { usleep(20_000) }
        let elapsed = Double(clock_gettime_ns() - started) / 1e9
        usleep(1_200_000)  // let it retry: it must not raise twice
        scanner.stop()
        let seen = conditions.withLock { $0 }
        #expect(elapsed < 5, "raised after \(elapsed) s; the configured time is 5 s")
        #expect(seen.count == 1, "\(seen)")
        guard case .unavailable(let reason)? = seen.first else { Issue.record("no condition: \(seen)"); return }
        #expect(reason.contains("no Bluetooth support"))
        #expect(reason.contains("Address family not supported"))

        var alarm = ConditionAlarm.bleAdapter("hci0")
        var events = EventFactory(rng: SplitMix64(seed: 1)) { EventTime(wall: $0, utcOffsetSeconds: 0, boottimeNanoseconds: 0, bootID: "b", clockSynced: true) }
        let t = WallTime(secondsSinceEpoch: 1_790_000_000)
        alarm.handle(seen[0], at: t, events: &events)
        alarm.handle(seen[0], at: t + .seconds(30), events: &events)  // still down: no second alarm
        alarm.handle(.available, at: t + .seconds(60), events: &events)
        let made = events.take()
        #expect(made.map(\.type) == [.bleAdapterUnavailable, .bleAdapterUnavailable])
        #expect(made.map(\.state) == [.active, .cleared])
        #expect(made[0].eventClass == .technical)
        #expect(made[1].correlationID == made[0].eventID)
        #expect(JSONValue.object(made[0].data)["reason"] == .string(reason))
    }
}

func clock_gettime_ns() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

@Test func anUnpluggedReceiverIsOneTechnicalEventAndItsReturnClearsIt() {
    var alarm = ConditionAlarm.serialReceiver("usb300")
    var events = EventFactory(rng: SplitMix64(seed: 2)) { EventTime(wall: $0, utcOffsetSeconds: 0, boottimeNanoseconds: 0, bootID: "b", clockSynced: true) }
    let t = WallTime(secondsSinceEpoch: 1_790_000_000)
    alarm.handle(SerialReceiver.Condition.unplugged(reason: "receiver usb300 was unplugged"), at: t, events: &events)
    alarm.handle(SerialReceiver.Condition.unplugged(reason: "receiver usb300 (vendor 0403) is not plugged in"), at: t + .seconds(2), events: &events)
    alarm.handle(SerialReceiver.Condition.available(path: "/dev/ttyUSB0", version: "GATEWAYCTRL app 2.11.1.0", baseID: "FF87CA00"), at: t + .seconds(9), events: &events)
    let made = events.take()
    #expect(made.map(\.type) == [.serialReceiverUnplugged, .serialReceiverUnplugged])
    #expect(made.map(\.state) == [.active, .cleared])
    #expect(made[1].correlationID == made[0].eventID)
    #expect(JSONValue.object(made[0].data)["receiver"] == .string("usb300"))
    #expect(JSONValue.object(made[1].data)["baseId"] == .string("FF87CA00"))
}
