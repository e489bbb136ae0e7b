#if canImport(Glibc)
import Glibc
#endif
@testable import BLEInput
import Synchronization
import Testing
import TestSupport
import VaktpostCore
@testable import VaktpostPosix

/// The daemon's Bluetooth socket kept open from one run of the agent to the next, so that a
/// button's one burst sent during a restart is read by the next run. This machine has no
/// Bluetooth: a packet socket pair stands in for the HCI socket (one read, one HCI packet).
@Suite(.serialized) struct KeptSocketTests {
    static let options = HCIScanner.Options(adapter: "hci0", mode: .raw, silentAfter: .seconds(60), keepAcrossRestarts: true)

    /// An LE advertising report from `address` as the controller sends it (H4 event packet).
    static func report(from address: [UInt8], data: [UInt8]) -> [UInt8] {
        let report: [UInt8] = [0x00, 0x00] + address.reversed() + [UInt8(data.count)] + data + [0xC4]
        let parameters: [UInt8] = [0x02, 0x01] + report  // subevent: advertising report, one of them
        return [0x04, 0x3E, UInt8(parameters.count)] + parameters
    }

    static let press = report(from: [0x38, 0x1F, 0x8D, 0x0C, 0x99, 0x01], data: [0x02, 0x01, 0x06, 0x06, 0x16, 0xD2, 0xFC, 0x44, 0x3A, 0x01])
    static let beacon = report(from: [0x38, 0x1F, 0x8D, 0x0C, 0x99, 0x02], data: [0x02, 0x01, 0x06])

    final class Heard: Sendable {
        let events = Mutex<[[UInt8]]>([])
        let conditions = Mutex<[HCIScanner.Condition]>([])
    }

    func scanner(_ options: HCIScanner.Options = options, socket: Int32?, systemd: NotifySocket, heard: Heard) -> HCIScanner {
        HCIScanner(options: options, socket: socket, notifySocket: systemd.path, now: { WallTime(secondsSinceEpoch: 1_790_000_000) },
                   onEvent: { e, _ in heard.events.withLock { $0.append(e) } }, onCondition: { c in heard.conditions.withLock { $0.append(c) } })
    }

    func socketPair() throws -> (ours: Int32, controller: Int32) {
        var fds: [Int32] = [0, 0]
        try #require(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
        return (fds[0], fds[1])
    }

    func send(_ packet: [UInt8], to fd: Int32) {
        _ = packet.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// What the controller's side can read within `milliseconds` (the scanner's commands), or nil.
    func readable(_ fd: Int32, within milliseconds: Int32) -> [UInt8]? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, milliseconds) > 0, p.revents & Int16(POLLIN) != 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 300)
        let n = read(fd, &buffer, buffer.count)
        return n > 0 ? Array(buffer[0..<n]) : nil
    }

    /// The controller's side sees its peer gone: nobody holds the socket any more.
    func hungUp(_ fd: Int32) -> Bool {
        var p = pollfd(fd: fd, events: 0, revents: 0)
        return poll(&p, 1, 1000) > 0 && p.revents & Int16(POLLHUP) != 0
    }

    /// A press heard while the agent restarted waits in the socket the run before kept; the new
    /// run reads it first, gives systemd its copy again, and does not restart the running scan
    /// (which would pause it). Stopped for a re-exec, the socket stays open for the next image,
    /// and what arrives meanwhile waits in it.
    @Test func aPressHeardDuringARestartIsReadByTheNextRun() throws {
        let systemd = try NotifySocket()
        let (ours, controller) = try socketPair()
        defer { close(controller) }
        send(Self.press, to: controller)
        send(Self.beacon, to: controller)
        let heard = Heard()
        let s = scanner(socket: ours, systemd: systemd, heard: heard)
        s.start()
        #expect(waitUntil(2) { heard.events.withLock { $0.count } == 2 })
        #expect(heard.events.withLock { $0 } == [Array(Self.press.dropFirst()), Array(Self.beacon.dropFirst())], "in the order heard")
        let removed = systemd.receive(), kept = systemd.receive()
        #expect(removed.text == "FDSTOREREMOVE=1\nFDNAME=ble-hci0-raw-s1")
        #expect(kept.text == "FDSTORE=1\nFDNAME=ble-hci0-raw-s1" && kept.fd != nil)
        if let copy = kept.fd { close(copy) }
        #expect(readable(controller, within: 300) == nil, "no command sent: the scan was left running")

        s.stop(keepingSocket: true)
        let next = try #require(s.socketForNextRun())
        #expect(next.name == "ble-hci0-raw-s1" && next.fd == ours)
        #expect(s.socketForNextRun() == nil, "handed on once")
        send(Self.press, to: controller)
        #expect(readable(ours, within: 1000) == Self.press, "heard after the stop, waiting for the next image")
        close(ours)
        #expect(hungUp(controller))
    }

    /// A stop for good closes the scanner's descriptor; systemd's copy is what keeps the socket
    /// (and closes it when the service is stopped for good).
    @Test func aStopClosesTheScannersDescriptorAndLeavesSystemdsCopy() throws {
        let systemd = try NotifySocket()
        let (ours, controller) = try socketPair()
        defer { close(controller) }
        let heard = Heard()
        let s = scanner(socket: ours, systemd: systemd, heard: heard)
        s.start()
        _ = systemd.receive()
        let copy = try #require(systemd.receive().fd)
        s.stop()
        #expect(s.socketForNextRun() == nil)
        send(Self.press, to: controller)
        #expect(readable(copy, within: 1000) == Self.press, "systemd's copy still hears")
        close(copy)
        #expect(hungUp(controller), "the scanner's descriptor was closed")
    }

    /// A kept socket that died meanwhile (the adapter was unplugged or reset) is given up:
    /// systemd lets go of its copy, and the scanner opens the adapter again (here it cannot).
    @Test func aDeadKeptSocketIsGivenUpAndTheAdapterOpenedAgain() throws {
        let systemd = try NotifySocket()
        let (ours, controller) = try socketPair()
        close(controller)
        let heard = Heard()
        let options = HCIScanner.Options(adapter: "hci9", mode: .raw, silentAfter: .seconds(60), keepAcrossRestarts: true)
        let s = scanner(options, socket: ours, systemd: systemd, heard: heard)
        s.start()
        defer { s.stop() }
        let messages = (0..<3).map { _ in systemd.receive().text }
        #expect(messages == ["FDSTOREREMOVE=1\nFDNAME=ble-hci9-raw-s1", "FDSTORE=1\nFDNAME=ble-hci9-raw-s1", "FDSTOREREMOVE=1\nFDNAME=ble-hci9-raw-s1"])
        #expect(waitUntil(3) { heard.conditions.withLock { !$0.isEmpty } })
        guard case .unavailable? = heard.conditions.withLock({ $0.first }) else {
            Issue.record("the adapter's state not reported: \(heard.conditions.withLock { $0 })")
            return
        }
    }

    /// Only a Bluetooth socket bound to the configured adapter and channel is taken; anything else
    /// handed over under the name is closed, and so is what no scanner claims (BLE dropped from
    /// the config, or another mode: a kept user-channel socket would hold the adapter).
    @Test func onlyASocketBoundAsConfiguredIsTakenAndTheRestIsClosed() throws {
        let systemd = try NotifySocket()
        let (wrong, wrongPeer) = try socketPair()
        defer { close(wrongPeer) }
        DescriptorStore.handed.withLock { $0["ble-hci0-raw-s1"] = wrong }
        #expect(HCIScanner.keptSocket(Self.options, notifySocket: systemd.path) == nil)
        #expect(systemd.receive().text == "FDSTOREREMOVE=1\nFDNAME=ble-hci0-raw-s1")
        #expect(hungUp(wrongPeer), "closed")

        let (unclaimed, unclaimedPeer) = try socketPair()
        defer { close(unclaimedPeer) }
        DescriptorStore.handed.withLock { $0["ble-hci0-user-channel-s1"] = unclaimed }
        #expect(HCIScanner.releaseUnclaimedSockets() == ["ble-hci0-user-channel-s1"])
        #expect(DescriptorStore.take("ble-hci0-user-channel-s1") == nil)
        #expect(hungUp(unclaimedPeer), "closed")
    }

    @Test func theStoreNameSaysAdapterModeAndScanSettings() {
        #expect(HCIScanner.storeName(.init(adapter: "hci1", mode: .userChannel, silentAfter: .seconds(1))) == "ble-hci1-user-channel-s1")
        #expect(HCIScanner.storeName(.init(adapter: "hci0", mode: .listenOnly, silentAfter: .seconds(1))) == "ble-hci0-listen-only-s1")
    }
}
