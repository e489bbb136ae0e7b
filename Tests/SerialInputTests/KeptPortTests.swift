#if canImport(Glibc)
import Glibc
#endif
@testable import SerialInput
import Synchronization
import Testing
import TestSupport
import VaktpostCore
@testable import VaktpostPosix

/// The hand-over of descriptors from one run of the agent to the next (systemd's store, or the
/// agent's own re-exec), as parsed from the environment.
struct DescriptorStoreTests {
    @Test func systemdsDescriptorsAreNamedInOrderForThisProcessOnly() {
        let open: (Int32) -> Bool = { _ in true }
        #expect(DescriptorStore.parse(listenPID: "42", listenFDs: "2", listenNames: "serial-usb300:serial-hall", handed: nil, pid: 42, isOpen: open)
                == ["serial-usb300": 3, "serial-hall": 4])
        // Meant for another process (a child that inherited the environment): not ours to read.
        #expect(DescriptorStore.parse(listenPID: "41", listenFDs: "2", listenNames: "serial-usb300:serial-hall", handed: nil, pid: 42, isOpen: open) == [:])
        // Fewer names than descriptors: an unnamed one is nobody's port.
        #expect(DescriptorStore.parse(listenPID: "42", listenFDs: "2", listenNames: "serial-usb300", handed: nil, pid: 42, isOpen: open) == ["serial-usb300": 3])
        #expect(DescriptorStore.parse(listenPID: "42", listenFDs: "x", listenNames: "serial-usb300", handed: nil, pid: 42, isOpen: open) == [:])
    }

    @Test func aReexecsListNamesOpenDescriptorsForThisProcessOnly() {
        let handed = "42 serial-usb300=9 serial-hall=x junk serial-stdin=0 serial-closed=12"
        #expect(DescriptorStore.parse(listenPID: nil, listenFDs: nil, listenNames: nil, handed: handed, pid: 42, isOpen: { $0 != 12 })
                == ["serial-usb300": 9])
        #expect(DescriptorStore.parse(listenPID: nil, listenFDs: nil, listenNames: nil, handed: handed, pid: 43, isOpen: { _ in true }) == [:])
    }

    /// The environment a re-exec starts with names the ports it hands on, drops systemd's list
    /// (for descriptors the new image does not have), and the ports survive the exec.
    @Test func theReexecsEnvironmentHandsThePortsOnAndNothingStale() throws {
        let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        let environment = DescriptorStore.environment(handingOn: [(name: "serial-usb300", fd: fd)],
                                                      from: ["PATH=/usr/bin", "LISTEN_PID=7", "LISTEN_FDS=1", "LISTEN_FDNAMES=serial-usb300", "VAKTPOST_HANDED_FDS=7 serial-a=5"])
        #expect(environment == ["PATH=/usr/bin", "VAKTPOST_HANDED_FDS=\(getpid()) serial-usb300=\(fd)"])
        #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC == 0, "close-on-exec cleared")
        let value = String(try #require(environment.last).dropFirst("VAKTPOST_HANDED_FDS=".count))
        #expect(DescriptorStore.parse(listenPID: nil, listenFDs: nil, listenNames: nil, handed: value, pid: getpid(), isOpen: { fcntl($0, F_GETFD) >= 0 })
                == ["serial-usb300": fd])
    }

    /// What systemd reads: the old copy under the name removed, then the descriptor itself.
    @Test func keepingAPortSendsSystemdACopyUnderItsName() throws {
        let systemd = try NotifySocket()
        let fake = FakeReceiver()
        defer { fake.hangUp() }
        let port = open(fake.slavePath, O_RDWR | O_NOCTTY | O_CLOEXEC)
        defer { close(port) }
        #expect(DescriptorStore.keep(port, name: "serial-usb300", socket: systemd.path))
        let first = systemd.receive(), second = systemd.receive()
        #expect(first.text == "FDSTOREREMOVE=1\nFDNAME=serial-usb300" && first.fd == nil)
        #expect(second.text == "FDSTORE=1\nFDNAME=serial-usb300")
        let copy = try #require(second.fd)
        defer { close(copy) }
        #expect(SerialReceiver.isSameDevice(copy, fake.slavePath), "the copy is the port")
        #expect(!DescriptorStore.keep(port, name: "serial-usb300", socket: nil), "not under systemd: nothing to keep it")
    }
}

/// A receiver's port kept open from one run of the agent to the next.
@Suite(.serialized) struct KeptPortTests {
    static let telegram = Hex.bytes("55000707017AD50901825DAB0001FFFFFFFF3600C7")!

    func start(_ name: String, path: String, port: SerialReceiver.OpenPort?) -> (SerialReceiver, Collected) {
        startReceiver(name, path: path, port: port)
    }

    func available(_ c: Collected) -> Bool {
        c.conditions.withLock { $0.contains { if case .available = $0 { return true } else { return false } } }
    }

    /// A telegram the stick sends while the agent re-executes itself (a pushed config): the port
    /// stays open through the exec, so the kernel keeps the telegram and the new run reads it.
    /// Opened again instead, the port would be flushed (a real USB300 resets) and it is lost.
    @Test func aTelegramSentDuringARestartIsReadByTheNextRun() throws {
        let fake = FakeReceiver()
        defer { fake.hangUp() }
        let (first, c1) = start("kept-a", path: fake.slavePath, port: nil)
        fake.answerBringUp()
        #expect(c1.waitFor("available", seconds: 3) { available(c1) })
        first.stop(keepingPort: true)
        let kept = try #require(first.portForNextRun())
        #expect(kept.name == "serial-kept-a")
        #expect(first.portForNextRun() == nil, "handed on once")
        fake.write(Self.telegram)  // between the runs
        usleep(100_000)

        DescriptorStore.handed.withLock { $0[kept.name] = kept.fd }  // what the next run is handed
        let port = try #require(SerialReceiver.openEarly(.init(name: "kept-a", path: fake.slavePath, match: nil)))
        let (second, c2) = start("kept-a", path: fake.slavePath, port: port)
        defer { second.stop() }
        fake.answerBringUp()
        #expect(c2.waitFor("telegram", seconds: 3) { !c2.telegrams.withLock { $0.isEmpty } })
        #expect(c2.telegrams.withLock { $0.map(\.senderID) } == ["01825DAB"])
    }

    /// The contrast: a stop that does not keep the port (a plain stop) closes it, and the next
    /// run's open flushes what the stick sent meanwhile, as a real USB300's reset would lose it.
    @Test func aPortOpenedAgainHearsNothingSentWhileItWasClosed() throws {
        let fake = FakeReceiver()
        defer { fake.hangUp() }
        let (first, c1) = start("kept-b", path: fake.slavePath, port: nil)
        fake.answerBringUp()
        #expect(c1.waitFor("available", seconds: 3) { available(c1) })
        first.stop()
        #expect(first.portForNextRun() == nil)
        fake.write(Self.telegram)
        usleep(100_000)
        let (second, c2) = start("kept-b", path: fake.slavePath, port: SerialReceiver.openEarly(.init(name: "kept-b", path: fake.slavePath, match: nil)))
        defer { second.stop() }
        fake.answerBringUp()
        #expect(c2.waitFor("available", seconds: 3) { available(c2) })
        usleep(300_000)
        #expect(c2.telegrams.withLock { $0.isEmpty })
    }

    /// A kept port that is another device now (the config changed) is let go, exclusive lock and
    /// all, even while systemd still holds a copy; the configured port is opened instead.
    @Test func aKeptPortThatIsNoLongerTheConfiguredOneIsLetGo() throws {
        let old = FakeReceiver(), new = FakeReceiver()
        defer { old.hangUp(); new.hangUp() }
        let fd = try #require(try? SerialReceiver.open(.init(name: "kept-c", path: old.slavePath, match: nil)).get().0, "cannot open \(old.slavePath)")
        let systemdsCopy = dup(fd)
        defer { close(systemdsCopy) }
        DescriptorStore.handed.withLock { $0["serial-kept-c"] = fd }
        let port = try #require(SerialReceiver.openEarly(.init(name: "kept-c", path: new.slavePath, match: nil)))
        #expect(port.path == new.slavePath)
        let again = open(old.slavePath, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
        defer { close(again) }
        #expect(again >= 0 && flock(again, LOCK_EX | LOCK_NB) == 0, "the old port can be opened and locked by whoever owns it now")
    }

    /// A pushed config may change the baud: a kept port is set up again, what it holds kept.
    @Test func aKeptPortTakesTheConfiguredBaudAndKeepsWhatItHolds() throws {
        let fake = FakeReceiver()
        defer { fake.hangUp() }
        let fd = try #require(try? SerialReceiver.open(.init(name: "kept-e", path: fake.slavePath, match: nil, baud: 57600)).get().0, "cannot open \(fake.slavePath)")
        fake.write(Self.telegram)
        usleep(100_000)
        DescriptorStore.handed.withLock { $0["serial-kept-e"] = fd }
        let port = try #require(SerialReceiver.openEarly(.init(name: "kept-e", path: fake.slavePath, match: nil, baud: 115200)))
        let (descriptor, _) = try #require(port.take())
        defer { close(descriptor) }
        #expect(descriptor == fd, "the kept port itself")
        var tty = termios()
        #expect(tcgetattr(descriptor, &tty) == 0 && cfgetispeed(&tty) == speed_t(B115200))
        var buffer = [UInt8](repeating: 0, count: 64)
        #expect(read(descriptor, &buffer, buffer.count) == Self.telegram.count, "what the port held is still there")
    }

    /// A port handed over for a receiver no longer in the config is closed at the start.
    @Test func aPortKeptForAReceiverNoLongerConfiguredIsClosed() throws {
        let fake = FakeReceiver()
        defer { fake.hangUp() }
        let fd = try #require(try? SerialReceiver.open(.init(name: "kept-d", path: fake.slavePath, match: nil)).get().0, "cannot open \(fake.slavePath)")
        DescriptorStore.handed.withLock { $0["serial-kept-d"] = fd }
        #expect(SerialReceiver.releaseUnclaimedPorts().contains("serial-kept-d"))
        #expect(DescriptorStore.take("serial-kept-d") == nil)
        let again = open(fake.slavePath, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
        defer { close(again) }
        #expect(again >= 0 && flock(again, LOCK_EX | LOCK_NB) == 0, "closed and unlocked")
    }
}
