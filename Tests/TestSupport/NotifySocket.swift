import Glibc

/// A stand-in for systemd's notify socket (`NOTIFY_SOCKET`): what the agent tells systemd, and
/// the descriptors it gives it to keep (`FDSTORE=1`), read back by a test.
public final class NotifySocket {
    public struct Unbound: Error, CustomStringConvertible {
        public let path: String
        public var description: String { "cannot bind a datagram socket at \(path)" }
    }

    public let path: String
    let fd: Int32

    public init() throws {
        path = "/tmp/vaktpost-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard fd >= 0, bound == 0 else {
            if fd >= 0 { close(fd) }
            throw Unbound(path: path)
        }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// One message and the descriptor it carried, if any; ("", nil) when none comes within `milliseconds`.
    public func receive(waiting milliseconds: Int32 = 2000) -> (text: String, fd: Int32?) {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, milliseconds) > 0 else { return ("", nil) }
        var buffer = [UInt8](repeating: 0, count: 512)
        var control = [UInt64](repeating: 0, count: 8)  // aligned for cmsghdr
        return buffer.withUnsafeMutableBytes { b in
            control.withUnsafeMutableBytes { c in
                var iov = iovec(iov_base: b.baseAddress, iov_len: b.count)
                return withUnsafeMutablePointer(to: &iov) { iovp in
                    var message = msghdr()
                    message.msg_iov = iovp
                    message.msg_iovlen = 1
                    message.msg_control = c.baseAddress
                    message.msg_controllen = c.count
                    let n = recvmsg(fd, &message, 0)
                    guard n >= 0 else { return ("", nil) }
                    var passed: Int32? = nil
                    // struct cmsghdr: cmsg_len (size_t), cmsg_level, cmsg_type (int), then the data.
                    if message.msg_controllen >= 20, c.load(fromByteOffset: 8, as: Int32.self) == SOL_SOCKET,
                       c.load(fromByteOffset: 12, as: Int32.self) == Int32(SCM_RIGHTS) {
                        passed = c.load(fromByteOffset: 16, as: Int32.self)
                    }
                    return (String(decoding: b[0..<n], as: UTF8.self), passed)
                }
            }
        }
    }
}
