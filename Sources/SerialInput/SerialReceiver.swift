#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import VaktpostCore
import VaktpostPosix

/// One EnOcean receiver on a serial port (a `[[serial]]` entry). Runs on its own queue: `poll`
/// and `read` never block the Swift concurrency pool.
///
/// Opens the port raw at the configured baud, exclusively (TIOCEXCL and flock), asks the
/// receiver for its version and base id, and hands every telegram to `onTelegram`. An unplug
/// (POLLHUP, EIO, a read of 0) is reported at once through `onCondition` and the port is
/// reopened with backoff (1 s doubling to 30 s); a receiver that stops answering the liveness
/// ping three times is reopened too. It never gives up while it runs.
public final class SerialReceiver: Sendable {
    public struct Options: Sendable {
        public var name: String
        public var path: String?
        public var match: SerialMatch?
        public var baud: Int
        /// No byte for this long: send CO_RD_VERSION to check the receiver still answers.
        public var pingAfter: Duration

        public init(name: String, path: String?, match: SerialMatch?, baud: Int = 57600, pingAfter: Duration = .seconds(60)) {
            self.name = name
            self.path = path
            self.match = match
            self.baud = baud
            self.pingAfter = pingAfter
        }

        public init(_ config: SerialConfig) {
            self.init(name: config.name, path: config.path, match: config.match, baud: config.baud, pingAfter: config.pingAfter)
        }
    }

    public enum Condition: Equatable, Sendable {
        case unplugged(reason: String)
        /// Open and answering; the receiver's own description and base id when it gave them.
        case available(path: String, version: String?, baseID: String?)
    }

    /// A port opened before anything reads it (`openEarly`): what the receiver hears meanwhile
    /// waits in the kernel's tty buffer (4 KB, some 190 telegrams), read first when it starts.
    /// Closed with its last reference if no receiver took it.
    public final class OpenPort: Sendable {
        let fd: Int32
        let path: String
        let taken = Atomic<Bool>(false)

        init(fd: Int32, path: String) {
            self.fd = fd
            self.path = path
        }

        /// The descriptor and its path, to the first who asks.
        func take() -> (Int32, String)? {
            taken.exchange(true, ordering: .acquiringAndReleasing) ? nil : (fd, path)
        }

        deinit {
            if !taken.load(ordering: .acquiring) { close(fd) }
        }
    }

    let options: Options
    let now: @Sendable () -> WallTime
    let onTelegram: @Sendable (ESP3Telegram, WallTime) -> Void
    let onCondition: @Sendable (Condition) -> Void
    let loop = BackgroundLoop(label: "vaktpost.serial")
    let early: OpenPort?
    /// Set by `stop(keepingPort: true)`: the run loop leaves its port open for the next run.
    let keepPort = Atomic<Bool>(false)
    /// The port left open at such a stop, until `portForNextRun` takes it or the receiver goes.
    let parked = Mutex<OpenPort?>(nil)

    /// `port`: the port `openEarly` opened for these options, to read first instead of opening it.
    public init(
        options: Options, port: OpenPort? = nil, now: @escaping @Sendable () -> WallTime,
        onTelegram: @escaping @Sendable (ESP3Telegram, WallTime) -> Void, onCondition: @escaping @Sendable (Condition) -> Void
    ) {
        self.options = options
        self.early = port
        self.now = now
        self.onTelegram = onTelegram
        self.onCondition = onCondition
    }

    /// Opens the receiver's port now, before the agent is ready to read it (its outbox is still
    /// being opened and checked, seconds with a large backlog on an SD card): a telegram sent
    /// meanwhile is kept by the kernel instead of being sent to a closed port. Nil when it cannot
    /// be opened now; the receiver then opens it itself, and reports why not.
    /// A port the previous run of the agent kept open (see `DescriptorStore`) is taken instead
    /// of opening the port again, if it is still the configured device.
    public static func openEarly(_ options: Options) -> OpenPort? {
        if let fd = DescriptorStore.take(storeName(options.name)) {
            // Set up again as the config says now (a pushed one may change the baud); unlike an
            // open, this does not flush what the port holds.
            if let path = locate(options), isSameDevice(fd, path), configure(fd, path: path, options) == nil { return OpenPort(fd: fd, path: path) }
            // Another device now (the config changed): let go of it, or its exclusive lock would
            // keep the configured port from being opened.
            letGo(fd, receiver: options.name)
        }
        guard case .success(let (fd, path)) = open(options) else { return nil }
        return OpenPort(fd: fd, path: path)
    }

    /// The name a receiver's port is kept under across restarts.
    public static func storeName(_ receiver: String) -> String { "serial-" + receiver }

    /// Closes ports handed over by the previous run that no receiver took (one no longer configured).
    public static func releaseUnclaimedPorts() -> [String] {
        DescriptorStore.closeUntaken(prefix: storeName(""), closing: release)
    }

    public func start() { loop.start { [self] in run() } }

    /// Stops reading and waits for the loop to end. `keepingPort`: leave the port open for
    /// `portForNextRun` (the agent re-executing itself), so that what the stick sends until the
    /// next run reads it waits in the kernel instead of being lost.
    public func stop(keepingPort: Bool = false) {
        keepPort.store(keepingPort, ordering: .relaxed)
        loop.stop()
    }

    /// After `stop(keepingPort: true)`: the open port and the name to hand it on under. Closed
    /// with the receiver if nobody takes it.
    public func portForNextRun() -> (name: String, fd: Int32)? {
        parked.withLock { $0 }?.take().map { (Self.storeName(options.name), $0.0) }
    }

    var isStopped: Bool { loop.isStopped }

    // MARK: The loop

    func run() {
        let hotplug = HotplugMonitor()
        var failures = 0
        var reported: String? = nil
        func unplugged(_ reason: String) {
            if reported != reason {
                reported = reason
                onCondition(.unplugged(reason: reason))
            }
        }
        while !isStopped {
            switch early?.take().map({ .success($0) }) ?? Self.open(options) {
            case .failure(let gone):
                unplugged(gone.reason)
                failures += 1
                wait(for: .seconds(min(30, 1 << min(failures - 1, 5))), hotplug: hotplug)
            case .success(let (fd, path)):
                failures = 0
                // systemd keeps a copy through a restart of the agent (DescriptorStore).
                DescriptorStore.keep(fd, name: Self.storeName(options.name))
                var port = Port(fd: fd)
                let (version, baseID) = bringUp(&port)
                reported = nil
                onCondition(.available(path: path, version: version, baseID: baseID))
                guard let reason = listen(&port) else {
                    // Stopped. Kept or not, systemd's copy stays: the port is open for the next run.
                    if keepPort.load(ordering: .relaxed) { parked.withLock { $0 = OpenPort(fd: fd, path: path) } } else { close(fd) }
                    return
                }
                // Given up (unplugged, not answering): or its lock would keep it from opening again.
                Self.letGo(fd, receiver: options.name)
                unplugged(reason)
                wait(for: .seconds(1), hotplug: hotplug)
            }
        }
    }

    /// Sleeps up to `d`, waking early when udev reports a tty coming or going.
    func wait(for d: Duration, hotplug: HotplugMonitor?) {
        let deadline = now() + d
        while !isStopped && now() < deadline {
            if let hotplug {
                var p = pollfd(fd: hotplug.fd, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 200) > 0 {
                    hotplug.drain()
                    return
                }
            } else {
                usleep(200_000)
            }
        }
    }

    /// The port's bytes and the framer that finds packets in them.
    struct Port {
        var fd: Int32
        var framer = ESP3Framer()
        var lastByte: WallTime? = nil
    }

    /// Reads until the port goes away (returns why) or the receiver is stopped (nil).
    func listen(_ port: inout Port) -> String? {
        var pingSent: WallTime? = nil
        var missed = 0
        var quietSince = now()
        while !isStopped {
            // Short waits only while a partial frame may need the idle timeout or a ping waits for
            // its answer; otherwise sleep until the ping is due (at most a second, to notice stop()).
            let untilPing = options.pingAfter - (now() - quietSince)
            let timeout: Int32 = port.framer.pending > 0 || pingSent != nil ? 100 : Int32(max(10, min(1000, untilPing.nanoseconds / 1_000_000)))
            switch readPackets(&port, timeout: timeout) {
            case .failure(let gone):
                return gone.reason
            case .success(let packets):
                if !packets.isEmpty || port.lastByte.map({ $0 >= quietSince }) == true { quietSince = port.lastByte ?? now() }
                for packet in packets {
                    if packet.type == ESP3Packet.response, pingSent != nil {
                        pingSent = nil
                        missed = 0
                    }
                    if packet.type == ESP3Packet.radioERP1 { onTelegram(ESP3Telegram(packet), now()) }
                }
            }
            let t = now()
            if let sent = pingSent {
                if t - sent >= .milliseconds(500) {
                    missed += 1
                    pingSent = nil
                    if missed >= 3 { return "receiver \(options.name) stopped answering (3 pings without a reply)" }
                }
            } else if t - quietSince >= options.pingAfter {
                guard send(port.fd, .readVersion) else { return "writing to receiver \(options.name) failed: \(String(cString: strerror(errno)))" }
                pingSent = t
                quietSince = t
            }
        }
        return nil
    }

    /// One poll and read: the packets completed, or why the port is gone. A partial frame that
    /// got no byte for 100 ms is dropped (the idle timeout).
    func readPackets(_ port: inout Port, timeout: Int32) -> Result<[ESP3Packet], PortGone> {
        var p = pollfd(fd: port.fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&p, 1, timeout)
        if ready < 0 {
            return errno == EINTR ? .success([]) : .failure(PortGone("poll on receiver \(options.name) failed: \(String(cString: strerror(errno)))"))
        }
        if ready == 0 {
            if port.framer.pending > 0, let last = port.lastByte, now() - last >= .milliseconds(100) { return .success(port.framer.flushStale()) }
            return .success([])
        }
        if p.revents & Int16(POLLIN) == 0, p.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 {
            return .failure(PortGone("receiver \(options.name) was unplugged"))
        }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = read(port.fd, &buffer, buffer.count)
        if n < 0 {
            let e = errno
            if e == EAGAIN || e == EINTR { return .success([]) }
            return .failure(PortGone(e == EIO || e == ENXIO || e == ENODEV
                ? "receiver \(options.name) was unplugged" : "reading from receiver \(options.name) failed: \(String(cString: strerror(e)))"))
        }
        if n == 0 { return .failure(PortGone("receiver \(options.name) was unplugged")) }
        port.lastByte = now()
        return .success(port.framer.feed(buffer[0..<n]))
    }

    func send(_ fd: Int32, _ packet: ESP3Packet) -> Bool {
        let bytes = packet.bytes
        return bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count
    }

    /// CO_RD_VERSION then CO_RD_IDBASE, each answered within 500 ms by a real receiver. A silent
    /// one is not an error here: the liveness ping decides.
    func bringUp(_ port: inout Port) -> (version: String?, baseID: String?) {
        func ask(_ command: ESP3Packet) -> [UInt8]? {
            guard send(port.fd, command) else { return nil }
            let deadline = now() + .milliseconds(500)
            var answer: [UInt8]? = nil
            while answer == nil && now() < deadline && !isStopped {
                guard case .success(let packets) = readPackets(&port, timeout: 50) else { return nil }
                // The whole read: a telegram read together with the answer is a sensor heard.
                for packet in packets {
                    if packet.type == ESP3Packet.response, answer == nil { answer = packet.data }
                    if packet.type == ESP3Packet.radioERP1 { onTelegram(ESP3Telegram(packet), now()) }
                }
            }
            return answer
        }
        var version: String? = nil
        if let r = ask(.readVersion), r.first == 0, r.count >= 33 {
            // app version(4), API version(4), chip id(4), chip version(4), description(16)
            let app = r[1...4].map(String.init).joined(separator: ".")
            let description = String(decoding: r[17..<33].prefix { $0 != 0 }, as: UTF8.self)
            version = "\(description) app \(app)"
        }
        var baseID: String? = nil
        if let r = ask(.readIDBase), r.first == 0, r.count >= 5 { baseID = Hex.string(Array(r[1...4])).uppercased() }
        return (version, baseID)
    }

    // MARK: Opening

    /// Why the port cannot be used (any more), in words for the technical event.
    struct PortGone: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    static func open(_ options: Options) -> Result<(Int32, String), PortGone> {
        guard let path = locate(options) else {
            let what = options.match.map { m in [m.vendor.map { "vendor \($0)" }, m.model.map { "model \($0)" }, m.serial.map { "serial \($0)" }].compactMap { $0 }.joined(separator: " ") } ?? options.path ?? ""
            return .failure(PortGone("receiver \(options.name) (\(what)) is not plugged in"))
        }
        let fd = Glibc.open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT || e == ENXIO || e == ENODEV { return .failure(PortGone("receiver \(options.name) is not plugged in (\(path))")) }
            if e == EACCES { return .failure(PortGone("no permission to open \(path): the agent's user must be in the device's group (the shipped udev rules use group vaktpost)")) }
            return .failure(PortGone("opening \(path) failed: \(String(cString: strerror(e)))"))
        }
        // Exclusive: a second program reading the same receiver would steal half the telegrams.
        _ = ioctl(fd, UInt(TIOCEXCL))
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            return .failure(PortGone("\(path) is in use by another program (ModemManager? the shipped udev rules tell it to keep away)"))
        }
        if let failure = configure(fd, path: path, options) {
            close(fd)
            return .failure(failure)
        }
        tcflush(fd, TCIOFLUSH)
        return .success((fd, path))
    }

    /// Raw mode at the configured baud; why not, if it failed.
    static func configure(_ fd: Int32, path: String, _ options: Options) -> PortGone? {
        var tty = termios()
        guard tcgetattr(fd, &tty) == 0 else { return PortGone("\(path) is not a serial port: \(String(cString: strerror(errno)))") }
        cfmakeraw(&tty)
        tty.c_cflag |= tcflag_t(CLOCAL | CREAD)
        // VMIN=1, VTIME=0: a read returns as soon as one byte is there; poll does the waiting.
        withUnsafeMutableBytes(of: &tty.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        cfsetspeed(&tty, SerialReceiver.speed(options.baud))
        guard tcsetattr(fd, TCSANOW, &tty) == 0 else { return PortGone("configuring \(path) failed: \(String(cString: strerror(errno)))") }
        return nil
    }

    /// A port given up: systemd's copy goes too (FDSTOREREMOVE), and this one is released.
    static func letGo(_ fd: Int32, receiver: String) {
        DescriptorStore.forget(storeName(receiver))
        release(fd)
    }

    /// Closes a port so that it can be opened again even while another copy of its descriptor is
    /// still open somewhere (systemd's, until it has read our FDSTOREREMOVE): the exclusive mode
    /// and the lock belong to the port and its open file, not to this descriptor.
    static func release(_ fd: Int32) {
        _ = ioctl(fd, UInt(TIOCNXCL))
        _ = flock(fd, LOCK_UN)
        close(fd)
    }

    /// Whether the descriptor is the character device at `path` (a kept port still the configured one).
    static func isSameDevice(_ fd: Int32, _ path: String) -> Bool {
        var open = stat(), named = stat()
        guard fstat(fd, &open) == 0, stat(path, &named) == 0 else { return false }
        return open.st_mode & S_IFMT == S_IFCHR && named.st_mode & S_IFMT == S_IFCHR && open.st_rdev == named.st_rdev
    }

    /// The configured path (followed if it is a symlink), or the first tty whose USB ids match.
    static func locate(_ options: Options) -> String? {
        if let path = options.path { return access(path, F_OK) == 0 ? path : nil }
        guard let match = options.match, let devices = try? Udev().serialDevices() else { return nil }
        return devices.first { d in
            (match.vendor == nil || d.vendor?.lowercased() == match.vendor) && (match.model == nil || d.model?.lowercased() == match.model)
                && (match.serial == nil || d.serial == match.serial)
        }?.devnode
    }

    static func speed(_ baud: Int) -> speed_t {
        switch baud {
        case 9600: return speed_t(B9600)
        case 19200: return speed_t(B19200)
        case 38400: return speed_t(B38400)
        case 115200: return speed_t(B115200)
        case 230400: return speed_t(B230400)
        case 460800: return speed_t(B460800)
        default: return speed_t(B57600)
        }
    }
}
