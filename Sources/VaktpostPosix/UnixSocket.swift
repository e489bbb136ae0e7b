#if canImport(Glibc)
import Glibc
#endif
internal import CPosixShim
import SystemPackage

func nanoseconds(_ d: Duration) -> UInt64 {
    let (s, atto) = d.components
    return UInt64(max(0, s)) * 1_000_000_000 + UInt64(max(0, atto) / 1_000_000_000)
}

/// Who is on the other end of a local socket, as the kernel says (SO_PEERCRED): not spoofable.
public struct PeerCredentials: Equatable, Sendable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32
}

/// One connected stream on a unix socket; closed on deinit.
public final class UnixConnection: Sendable {
    public let fd: Int32

    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    public func peer() throws(PosixError) -> PeerCredentials {
        var pid: pid_t = 0, uid: uid_t = 0, gid: gid_t = 0
        guard vaktpost_peer_credentials(fd, &pid, &uid, &gid) == 0 else { throw PosixError(Errno(rawValue: errno), function: "getsockopt(SO_PEERCRED)") }
        return PeerCredentials(pid: pid, uid: uid, gid: gid)
    }

    /// Reads up to the first newline (not included), at most `limit` bytes, within `timeout`.
    public func readLine(limit: Int = 64 << 10, timeout: Duration) throws(PosixError) -> [UInt8]? {
        var out: [UInt8] = []
        var byte: UInt8 = 0
        let deadline = SystemClock.boottime() + nanoseconds(timeout)
        while out.count < limit {
            let left = Int64(deadline) - Int64(SystemClock.boottime())
            guard left > 0, try wait(readable: true, milliseconds: Int32(min(left / 1_000_000, 1000))) else {
                if left <= 0 { return nil }
                continue
            }
            let n = read(fd, &byte, 1)
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw PosixError(Errno(rawValue: errno), function: "read")
            }
            if n == 0 { return out.isEmpty ? nil : out }
            if byte == UInt8(ascii: "\n") { return out }
            out.append(byte)
        }
        return out
    }

    /// Waits until the socket can be read (or written); false on timeout.
    public func wait(readable: Bool, milliseconds: Int32) throws(PosixError) -> Bool {
        var p = pollfd(fd: fd, events: Int16(readable ? POLLIN : POLLOUT), revents: 0)
        let r = poll(&p, 1, milliseconds)
        if r < 0 {
            if errno == EINTR { return false }
            throw PosixError(Errno(rawValue: errno), function: "poll")
        }
        return r > 0
    }

    /// Writes everything; false when the other end has gone.
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += n
        }
        return true
    }

    /// Reads until the other end closes (a whole reply), at most `limit` bytes.
    public func readAll(limit: Int = 16 << 20, timeout: Duration) throws(PosixError) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        let deadline = SystemClock.boottime() + nanoseconds(timeout)
        while out.count < limit {
            let left = Int64(deadline) - Int64(SystemClock.boottime())
            guard left > 0 else { throw PosixError(.timedOut, function: "read") }
            guard try wait(readable: true, milliseconds: Int32(min(left / 1_000_000, 1000))) else { continue }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw PosixError(Errno(rawValue: errno), function: "read")
            }
            if n == 0 { break }
            out += buffer[0..<n]
        }
        return out
    }

    /// A client connection to a listening socket.
    public static func connect(path: String) throws(PosixError) -> UnixConnection {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw PosixError(Errno(rawValue: errno), function: "socket") }
        let connection = UnixConnection(fd: fd)
        var addr = try UnixListener.address(path)
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard r == 0 else { throw PosixError(Errno(rawValue: errno), function: "connect", path: path) }
        return connection
    }
}

/// A listening unix stream socket at a path, created with a mode (and group) of its own.
public final class UnixListener: Sendable {
    public let fd: Int32
    public let path: String

    /// Replaces a stale socket file at `path`; `mode` and `group` are applied before anyone can connect.
    public init(path: String, mode: UInt32, group: UInt32? = nil) throws(PosixError) {
        self.path = path
        var addr = try UnixListener.address(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw PosixError(Errno(rawValue: errno), function: "socket") }
        self.fd = fd
        unlink(path)
        // Bind under a restrictive umask, then set the real mode: no window where others may connect.
        let old = umask(0o177)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        umask(old)
        guard bound == 0 else {
            let e = errno
            close(fd)
            throw PosixError(Errno(rawValue: e), function: "bind", path: path)
        }
        if let group { _ = chown(path, UInt32.max, group) }
        chmod(path, mode_t(mode))
        guard listen(fd, 16) == 0 else {
            let e = errno
            close(fd)
            throw PosixError(Errno(rawValue: e), function: "listen", path: path)
        }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// The next connection, or nil when none came within `milliseconds`.
    public func accept(milliseconds: Int32) throws(PosixError) -> UnixConnection? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let r = poll(&p, 1, milliseconds)
        if r < 0 { if errno == EINTR { return nil }; throw PosixError(Errno(rawValue: errno), function: "poll") }
        guard r > 0 else { return nil }
        let c = Glibc.accept(fd, nil, nil)
        guard c >= 0 else {
            if errno == EINTR || errno == EAGAIN || errno == ECONNABORTED { return nil }
            throw PosixError(Errno(rawValue: errno), function: "accept")
        }
        _ = fcntl(c, F_SETFD, FD_CLOEXEC)
        return UnixConnection(fd: c)
    }

    static func address(_ path: String) throws(PosixError) -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < capacity else { throw PosixError(.fileNameTooLong, function: "bind", path: path) }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        return addr
    }
}

/// systemd's notification protocol, without libsystemd: READY=1, STATUS=..., WATCHDOG=1, STOPPING=1.
public enum SystemdNotify {
    /// True when the agent runs under systemd with `Type=notify`.
    public static var isAvailable: Bool { Files.environment("NOTIFY_SOCKET") != nil }

    @discardableResult
    public static func send(_ state: String) -> Bool { vaktpost_sd_notify(state) == 1 }

    /// `WatchdogSec=` as systemd passes it (WATCHDOG_USEC, for this pid); nil when not set.
    public static var watchdogInterval: Duration? {
        guard let usec = Files.environment("WATCHDOG_USEC").flatMap(Int64.init), usec > 0 else { return nil }
        if let pid = Files.environment("WATCHDOG_PID").flatMap(Int32.init), pid != getpid() { return nil }
        return .microseconds(usec)
    }
}

extension Files {
    /// Free space for unprivileged writers on the file system holding `path`, in percent and bytes.
    public static func freeSpace(_ path: String) -> (percent: Double, bytes: Int64)? {
        var s = statvfs()
        guard statvfs(path, &s) == 0, s.f_blocks > 0 else { return nil }
        return (Double(s.f_bavail) * 100 / Double(s.f_blocks), Int64(s.f_bavail) * Int64(s.f_frsize))
    }

    /// Appends a line to a file (created 0640), for the audit log.
    public static func appendLine(_ path: String, _ line: String) throws(PosixError) {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw PosixError(Errno(rawValue: errno), function: "open", path: path) }
        defer { close(fd) }
        let bytes = Array((line + "\n").utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else { throw PosixError(Errno(rawValue: errno), function: "write", path: path) }
    }
}
