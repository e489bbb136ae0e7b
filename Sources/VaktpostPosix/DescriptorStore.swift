#if canImport(Glibc)
import Glibc
#endif
internal import CPosixShim
import Synchronization

/// Descriptors that outlive one run of the agent. A receiver's port closed at a restart and
/// opened again by the next run loses what the stick sends in between (a real USB300 is reset
/// when its port is opened; the agent flushes what a closed port had buffered). Kept open, the
/// kernel holds those telegrams for the next run, which reads them first.
///
/// - Across a restart by systemd (`systemctl restart`, `Restart=always`): the unit's
///   `FileDescriptorStoreMax=` lets the agent give systemd a copy of each open port
///   (`FDSTORE=1`, sd_notify(3)). systemd keeps it while the service restarts and hands it to
///   the next start (`LISTEN_FDS`, `LISTEN_FDNAMES`, sd_listen_fds(3)); it closes its copy when
///   the service is stopped for good, and by itself when the port hangs up (an unplug).
/// - Across the agent's own re-exec (a config from the platform): the port stays open through
///   execve(), named in `VAKTPOST_HANDED_FDS` ("PID NAME=FD ...").
public enum DescriptorStore {
    public static let handedVariable = "VAKTPOST_HANDED_FDS"

    /// What this process was handed at its start, by name, each until taken. Read once: the
    /// first use parses the environment and marks the descriptors close-on-exec.
    static let handed = Mutex<[String: Int32]>(fromEnvironment())

    static func fromEnvironment() -> [String: Int32] {
        let found = parse(listenPID: Files.environment("LISTEN_PID"), listenFDs: Files.environment("LISTEN_FDS"),
                          listenNames: Files.environment("LISTEN_FDNAMES"), handed: Files.environment(handedVariable),
                          pid: getpid(), isOpen: { fcntl($0, F_GETFD) >= 0 })
        for fd in found.values { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return found
    }

    /// systemd's descriptors (from 3 on, named in order, for this pid only) and the re-exec's
    /// list (for this pid only, and only descriptors that are open). Anything malformed is
    /// ignored: a wrong guess would read someone else's descriptor as a port.
    public static func parse(listenPID: String?, listenFDs: String?, listenNames: String?, handed: String?, pid: Int32,
                             isOpen: (Int32) -> Bool) -> [String: Int32] {
        var found: [String: Int32] = [:]
        if listenPID.flatMap(Int32.init) == pid, let count = listenFDs.flatMap(Int32.init), count > 0, count < 1024 {
            let names = listenNames.map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) } ?? []
            for i in 0..<count where Int(i) < names.count && !names[Int(i)].isEmpty && found[names[Int(i)]] == nil {
                found[names[Int(i)]] = 3 + i
            }
        }
        if let handed {
            let words = handed.split(separator: " ")
            if let first = words.first, Int32(first) == pid {
                for word in words.dropFirst() {
                    let pair = word.split(separator: "=", maxSplits: 1)
                    guard pair.count == 2, let fd = Int32(pair[1]), fd > 2, isOpen(fd) else { continue }
                    found[String(pair[0])] = fd
                }
            }
        }
        return found
    }

    /// The descriptor handed over under `name`, to the first who asks.
    public static func take(_ name: String) -> Int32? {
        handed.withLock { $0.removeValue(forKey: name) }
    }

    /// Closes what was handed over under names beginning with `prefix` and nobody took (a
    /// receiver no longer configured), and tells systemd to let go of its copy too. `closing`
    /// closes one (a port has more to undo first). Returns the names.
    @discardableResult
    public static func closeUntaken(prefix: String, closing: (Int32) -> Void = { _ = close($0) }) -> [String] {
        let left = handed.withLock { h in
            let mine = h.filter { $0.key.hasPrefix(prefix) }
            for name in mine.keys { h.removeValue(forKey: name) }
            return mine
        }
        for (name, fd) in left {
            forget(name)
            closing(fd)
        }
        return left.keys.sorted()
    }

    /// Gives systemd a copy of `fd` to keep under `name`, in place of one it kept under that
    /// name before. False when the agent does not run under systemd or the message failed; true
    /// says only that it went (a unit without `FileDescriptorStoreMax=` drops the descriptor).
    @discardableResult
    public static func keep(_ fd: Int32, name: String, socket: String? = Files.environment("NOTIFY_SOCKET")) -> Bool {
        guard let socket else { return false }
        forget(name, socket: socket)
        return vaktpost_sd_notify_to(socket, "FDSTORE=1\nFDNAME=\(name)", fd) == 1
    }

    /// Tells systemd to close the copy it keeps under `name`, if any.
    public static func forget(_ name: String, socket: String? = Files.environment("NOTIFY_SOCKET")) {
        guard let socket else { return }
        _ = vaktpost_sd_notify_to(socket, "FDSTOREREMOVE=1\nFDNAME=\(name)", -1)
    }

    /// The environment for a re-exec that hands `descriptors` on: this one without the start's
    /// own hand-over (systemd's would name descriptors the new image does not have), plus the
    /// list. Clears close-on-exec on each descriptor, so call it right before execve().
    public static func environment(handingOn descriptors: [(name: String, fd: Int32)], from current: [String] = processEnvironment()) -> [String] {
        let stale: Set<Substring> = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", Substring(handedVariable)]
        var out = current.filter { !stale.contains($0.prefix { $0 != "=" }) }
        guard !descriptors.isEmpty else { return out }
        for d in descriptors { _ = fcntl(d.fd, F_SETFD, 0) }
        out.append("\(handedVariable)=\(getpid()) " + descriptors.map { "\($0.name)=\($0.fd)" }.joined(separator: " "))
        return out
    }

    /// This process's environment, as execve() takes it.
    public static func processEnvironment() -> [String] {
        var out: [String] = []
        var entry = environ
        while let e = entry.pointee {
            out.append(String(cString: e))
            entry += 1
        }
        return out
    }
}
