#if canImport(Glibc)
import Glibc
#endif
internal import CHCI
import Synchronization
import VaktpostCore
import VaktpostPosix

/// Passive LE scanning on a raw HCI socket (research/ble.md §1). Runs on its own queue: `poll`
/// and `read` never block the Swift concurrency pool. Every HCI event it reads goes to
/// `onEvent`; every raise or clear of `ble.adapter_unavailable` goes to `onCondition`. It never
/// gives up: a missing adapter, a kernel without Bluetooth, a missing capability or a silent scan
/// is reported and retried for as long as it runs.
public final class HCIScanner: Sendable {
    public struct Options: Sendable {
        public var adapter: String
        public var mode: BLEMode
        public var silentAfter: Duration
        /// The daemon keeps its socket across its own restarts (`DescriptorStore`); a
        /// technician's `vaktpost ble scan` does not.
        public var keepAcrossRestarts: Bool

        public init(adapter: String, mode: BLEMode, silentAfter: Duration, keepAcrossRestarts: Bool = false) {
            self.adapter = adapter
            self.mode = mode
            self.silentAfter = silentAfter
            self.keepAcrossRestarts = keepAcrossRestarts
        }
    }

    public enum Condition: Equatable, Sendable {
        case unavailable(reason: String)
        case available
    }

    let options: Options
    let now: @Sendable () -> WallTime
    let onEvent: @Sendable ([UInt8], WallTime) -> Void
    let onCondition: @Sendable (Condition) -> Void
    let loop = BackgroundLoop(label: "vaktpost.ble.hci")
    /// The socket the previous run kept, until the loop takes it; after a stop that keeps the
    /// socket, the open socket for the next run.
    let handed: Mutex<Int32?>
    let parked = Mutex<Int32?>(nil)
    let keepSocket = Atomic<Bool>(false)
    /// systemd's, which keeps a copy of the socket (`DescriptorStore`).
    let notifySocket: String?

    /// `socket`: one the previous run of the agent kept scanning (`keptSocket`), read first.
    public init(
        options: Options, socket: Int32? = nil, notifySocket: String? = Files.environment("NOTIFY_SOCKET"),
        now: @escaping @Sendable () -> WallTime,
        onEvent: @escaping @Sendable ([UInt8], WallTime) -> Void, onCondition: @escaping @Sendable (Condition) -> Void
    ) {
        self.options = options
        self.handed = Mutex(socket)
        self.notifySocket = notifySocket
        self.now = now
        self.onEvent = onEvent
        self.onCondition = onCondition
    }

    public func start() { loop.start { [self] in run() } }

    /// Stops within about a second (the poll timeout) and waits for the loop to end.
    /// `keepingSocket`: leave the socket open for `socketForNextRun` (the agent re-executing
    /// itself), so that what is heard until the next run reads it waits in the kernel.
    public func stop(keepingSocket: Bool = false) {
        keepSocket.store(keepingSocket, ordering: .relaxed)
        loop.stop()
    }

    /// After `stop(keepingSocket: true)`: the open socket and the name to hand it on under.
    public func socketForNextRun() -> (name: String, fd: Int32)? {
        parked.withLock { p in
            defer { p = nil }
            return p.map { (Self.storeName(options), $0) }
        }
    }

    // MARK: Across restarts

    /// A button sends one burst per press (research/ble.md §4): a press while the agent restarts
    /// (a pushed config, an upgrade, a crash and `Restart=always`) would be heard by nobody. So
    /// the daemon's socket outlives one run: systemd keeps a copy (`FDSTORE=1`) or the re-exec
    /// hands it on, the controller goes on scanning (nothing turns the scan off), and the kernel
    /// queues every report for the next run, which reads them first.
    /// The name says the adapter and the mode (a socket bound otherwise is no use to a new
    /// config) and the scan's settings (`scanSettings`): the next run does not restart the scan
    /// on a kept socket, so an upgrade that scans otherwise must not take one.
    public static func storeName(_ options: Options) -> String { storePrefix + "\(options.adapter)-\(options.mode.rawValue)-s\(scanSettings)" }
    static let storePrefix = "ble-"

    /// Bump when `startScan` changes what it asks of the controller (interval, window, filters).
    static let scanSettings = 1

    /// The socket the previous run kept for these options, if it is still one bound to that
    /// adapter on that channel; anything else under the name is let go.
    public static func keptSocket(_ options: Options, notifySocket: String? = Files.environment("NOTIFY_SOCKET")) -> Int32? {
        guard let fd = DescriptorStore.take(storeName(options)) else { return nil }
        guard isBound(fd, to: options) else {
            DescriptorStore.forget(storeName(options), socket: notifySocket)
            close(fd)
            return nil
        }
        return fd
    }

    /// Closes sockets kept by the previous run that no scanner took (BLE no longer configured, or
    /// another adapter or mode now: a kept user-channel socket would keep the adapter from the
    /// new one). Returns their names.
    public static func releaseUnclaimedSockets() -> [String] {
        DescriptorStore.closeUntaken(prefix: storePrefix)
    }

    /// An AF_BLUETOOTH socket bound to the adapter and channel the options name.
    static func isBound(_ fd: Int32, to options: Options) -> Bool {
        guard let index = adapterIndex(options.adapter) else { return false }
        var address = hci_socket_address()
        var length = socklen_t(MemoryLayout<hci_socket_address>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return named == 0 && address.family == sa_family_t(AF_BLUETOOTH) && address.device == index && address.channel == channel(options.mode)
    }

    static func adapterIndex(_ adapter: String) -> UInt16? {
        adapter.hasPrefix("hci") ? UInt16(adapter.dropFirst(3)) : nil
    }

    static func channel(_ mode: BLEMode) -> UInt16 {
        UInt16(mode == .userChannel ? HCI_CHANNEL_USER_SOCKET : HCI_CHANNEL_RAW_SOCKET)
    }

    var isStopped: Bool { loop.isStopped }

    // MARK: The loop

    struct OpenFailure: Error {
        var reason: String
        var certain: Bool
    }

    func run() {
        var supervisor = BLESupervisor(silentAfter: options.silentAfter)
        var kept = handed.withLock { h in
            defer { h = nil }
            return h
        }
        while !isStopped {
            let fd: Int32
            let scanning = kept != nil
            if let socket = kept {
                fd = socket
                kept = nil
            } else {
                switch open() {
                case .failure(let failure):
                    let actions = supervisor.openFailed(failure.reason, certain: failure.certain)
                    perform(actions, fd: nil)
                    for case .reopen(let after) in actions { loop.sleep(after) }
                    continue
                case .success(let opened):
                    fd = opened
                }
            }
            if options.keepAcrossRestarts { DescriptorStore.keep(fd, name: Self.storeName(options), socket: notifySocket) }
            // A kept socket's scan is running (it was never turned off): started again, it would
            // pause for a moment. If someone turned it off meanwhile, the silence watchdog
            // restarts it. If the controller refuses both command families, listen anyway:
            // bluetoothd may be scanning, and the watchdog raises the alarm if nothing arrives.
            if options.mode != .listenOnly && !scanning { _ = startScan(fd) }
            perform(supervisor.scanStarted(at: now(), deafBecause: HCIScanner.missingCapability(options.mode)), fd: fd)
            guard let failure = listen(fd, supervisor: &supervisor) else {
                // Stopped. Kept or not, systemd's copy stays open for the next run.
                if keepSocket.load(ordering: .relaxed) { parked.withLock { $0 = fd } } else { close(fd) }
                return
            }
            // A dead socket (the adapter unplugged or reset) is no use to the next run either.
            if options.keepAcrossRestarts { DescriptorStore.forget(Self.storeName(options), socket: notifySocket) }
            close(fd)
            perform(supervisor.openFailed(failure, certain: false), fd: nil)
        }
    }

    /// Reads events until the socket fails (returns why) or the scanner is stopped (nil).
    func listen(_ fd: Int32, supervisor: inout BLESupervisor) -> String? {
        var buffer = [UInt8](repeating: 0, count: 260)  // HCI_MAX_EVENT_SIZE + H4 type
        while !isStopped {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, 1000)
            if ready < 0 && errno != EINTR { return "poll on the HCI socket failed: \(errnoText())" }
            if ready > 0 {
                if p.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 && p.revents & Int16(POLLIN) == 0 {
                    return "adapter \(options.adapter) went away"
                }
                let n = read(fd, &buffer, buffer.count)
                if n < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    return "reading from \(options.adapter) failed: \(errnoText())"  // EPIPE: the adapter was unplugged or reset
                }
                if n == 0 { return "adapter \(options.adapter) closed the socket" }
                let time = now()
                guard case .success(let event) = HCI.eventFromH4(Array(buffer[0..<n])) else { continue }
                if case .success(let reports) = HCI.advertisingReports(event), !reports.isEmpty {
                    perform(supervisor.reportReceived(at: time), fd: fd)
                }
                onEvent(event, time)
            }
            perform(supervisor.tick(at: now()), fd: fd)
        }
        return nil
    }

    func perform(_ actions: [BLESupervisor.Action], fd: Int32?) {
        for action in actions {
            switch action {
            case .raise(let reason): onCondition(.unavailable(reason: reason))
            case .clear: onCondition(.available)
            case .restartScan:
                if let fd, options.mode != .listenOnly, let failure = startScan(fd) {
                    onCondition(.unavailable(reason: failure))
                }
            case .reopen: break  // the loop reopens after the backoff
            }
        }
    }

    func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    // MARK: Socket

    func open() -> Result<Int32, OpenFailure> {
        guard let index = Self.adapterIndex(options.adapter) else {
            return .failure(OpenFailure(reason: "\"\(options.adapter)\" is not an adapter name like hci0", certain: true))
        }
        let fd = socket(AF_BLUETOOTH, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), HCI_PROTOCOL)
        if fd < 0 {
            let e = errno
            switch e {
            case EAFNOSUPPORT:
                return .failure(OpenFailure(reason: "this kernel has no Bluetooth support (socket: \(errnoText(e))); BLE sensors cannot be heard on this machine", certain: true))
            case EPERM, EACCES:
                return .failure(OpenFailure(reason: "not permitted to open a Bluetooth socket (\(errnoText(e))); run the agent as the vaktpost service, which has CAP_NET_RAW", certain: true))
            default:
                return .failure(OpenFailure(reason: "socket(AF_BLUETOOTH) failed: \(errnoText(e))", certain: false))
            }
        }
        var address = hci_socket_address()
        address.family = sa_family_t(AF_BLUETOOTH)
        address.device = index
        address.channel = Self.channel(options.mode)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<hci_socket_address>.size)) }
        }
        if bound < 0 {
            let e = errno
            close(fd)
            switch e {
            case ENODEV:
                return .failure(OpenFailure(reason: "adapter \(options.adapter) does not exist (ls /sys/class/bluetooth lists the adapters)", certain: true))
            case EBUSY:
                return .failure(OpenFailure(reason: "adapter \(options.adapter) is up and owned by bluetoothd; user-channel mode needs it down, or use mode = \"raw\"", certain: true))
            default:
                return .failure(OpenFailure(reason: "bind to \(options.adapter) failed: \(errnoText(e))", certain: false))
            }
        }
        var filter = Self.eventFilter
        if setsockopt(fd, HCI_SOCKET_LEVEL, HCI_FILTER_OPTION, &filter, socklen_t(MemoryLayout<hci_socket_filter>.size)) < 0 {
            let e = errno
            close(fd)
            return .failure(OpenFailure(reason: "setting the HCI filter failed: \(errnoText(e))", certain: false))
        }
        Self.enlargeQueue(fd)
        return .success(fd)
    }

    /// Room in the kernel for what is heard while nobody reads (a restart of the agent: 1-3 s).
    /// Each queued report costs about a kilobyte of socket memory; the default 208 KiB holds a
    /// couple of hundred, under a second of a crowded block of flats, and past that the newest
    /// are dropped, a press among them. 2 MiB holds some two thousand. With CAP_NET_ADMIN (the
    /// unit has it) past `net.core.rmem_max`; without, up to it. Used only while reports wait.
    static func enlargeQueue(_ fd: Int32) {
        var bytes: Int32 = 1 << 20  // the kernel doubles it for its bookkeeping
        let size = socklen_t(MemoryLayout<Int32>.size)
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, size) < 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, size)
        }
    }

    /// The socket hears HCI event packets only, and of those only LE Meta (the advertising
    /// reports), Command Complete and Command Status (the answers to `command`).
    static var eventFilter: hci_socket_filter {
        var filter = hci_socket_filter()
        filter.type_mask = 1 << 0x04  // H4 packet type 0x04: event
        for event: UInt32 in [0x3E, 0x0E, 0x0F] {  // LE Meta, Command Complete, Command Status
            if event < 32 { filter.event_mask.0 |= 1 << event } else { filter.event_mask.1 |= 1 << (event - 32) }
        }
        return filter
    }

    /// Without CAP_NET_RAW the kernel quietly filters out LE Meta events: no error, no reports.
    static func missingCapability(_ mode: BLEMode) -> String? {
        guard let status = try? readProcStatus(), let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
            let caps = UInt64(line.dropFirst(7).trimmingWhitespace(), radix: 16)
        else { return nil }
        if caps & (1 << 13) == 0 {
            return "the agent lacks CAP_NET_RAW, so the kernel filters out every advertising report; run it as the vaktpost service (AmbientCapabilities=CAP_NET_RAW)"
        }
        if mode == .userChannel, caps & (1 << 12) == 0 {
            return "user-channel mode needs CAP_NET_ADMIN; run it as the vaktpost service or use mode = \"raw\""
        }
        return nil
    }

    static func readProcStatus() throws -> String {
        let fd = Glibc.open("/proc/self/status", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw OpenFailure(reason: "", certain: false) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 8192)
        let n = read(fd, &buffer, buffer.count)
        return String(decoding: buffer[0..<max(0, n)], as: UTF8.self)
    }

    // MARK: Commands

    /// Passive scan, duplicates not filtered, window = interval (30 ms). Uses the extended
    /// commands when the controller has them, else the legacy ones; if the controller refuses
    /// that family (someone else used the other), tries the other once. Returns why both failed.
    func startScan(_ fd: Int32) -> String? {
        if options.mode == .userChannel {
            _ = command(fd, 0x0C03, [])  // HCI_Reset: the agent owns the adapter alone
            _ = command(fd, 0x0C01, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0x00, 0x20])  // Set_Event_Mask: the default 0x1FFFFFFFFFFF plus LE Meta (bit 61)
            _ = command(fd, 0x2001, [0x1F, 0x10, 0, 0, 0, 0, 0, 0])  // LE_Set_Event_Mask: adv report + ext adv report
        }
        let supported = command(fd, 0x1002, [])  // Read_Local_Supported_Commands
        let extended = supported.map { $0.count > 38 && $0[38] & 0x60 == 0x60 } ?? false  // octet 37, bits 5-6 (after status)
        let first = extended ? scanExtended(fd) : scanLegacy(fd)
        guard let failure = first else { return nil }
        guard (extended ? scanLegacy(fd) : scanExtended(fd)) != nil else { return nil }
        return failure
    }

    func scanExtended(_ fd: Int32) -> String? {
        _ = command(fd, 0x2042, [0, 0, 0, 0, 0, 0])  // disable first; an error just means it was off
        guard command(fd, 0x2041, [0x00, 0x00, 0x01, 0x00, 0x30, 0x00, 0x30, 0x00]) != nil else {
            return "the controller refused the extended scan parameters"
        }
        return command(fd, 0x2042, [1, 0, 0, 0, 0, 0]) != nil ? nil : "the controller refused to start an extended scan"
    }

    func scanLegacy(_ fd: Int32) -> String? {
        _ = command(fd, 0x200C, [0, 0])
        guard command(fd, 0x200B, [0x00, 0x30, 0x00, 0x30, 0x00, 0x00, 0x00]) != nil else {
            return "the controller refused the scan parameters"
        }
        return command(fd, 0x200C, [1, 0]) != nil ? nil : "the controller refused to start the scan"
    }

    /// Sends one command and waits up to 2 s for its Command Complete (status 0: returns the
    /// status and return parameters) or a failing status (nil). Reports that arrive meanwhile
    /// are passed on, not dropped.
    func command(_ fd: Int32, _ opcode: UInt16, _ params: [UInt8]) -> [UInt8]? {
        let packet: [UInt8] = [0x01, UInt8(opcode & 0xFF), UInt8(opcode >> 8), UInt8(params.count)] + params
        guard packet.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == packet.count else { return nil }
        let deadline = now() + .seconds(2)
        var buffer = [UInt8](repeating: 0, count: 260)
        while now() < deadline && !isStopped {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 200) > 0 else { continue }
            let n = read(fd, &buffer, buffer.count)
            guard n > 0, case .success(let event) = HCI.eventFromH4(Array(buffer[0..<n])), event.count >= 2 else { return nil }
            switch event[0] {
            case 0x0E where event.count >= 6 && UInt16(event[3]) | UInt16(event[4]) << 8 == opcode:
                return event[5] == 0 ? Array(event[5...]) : nil
            case 0x0F where event.count >= 6 && UInt16(event[4]) | UInt16(event[5]) << 8 == opcode:
                if event[2] != 0 { return nil }
            default:
                onEvent(event, now())
            }
        }
        return nil
    }
}
