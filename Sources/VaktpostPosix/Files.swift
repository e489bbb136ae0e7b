internal import CPosixShim
#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// A failed system call: errno, the call, and the path it was about, in the words a technician reads.
public struct PosixError: Error, Equatable, Sendable, CustomStringConvertible {
    public var errno: Errno
    public var function: String
    public var path: String?

    public init(_ errno: Errno, function: String, path: String? = nil) {
        self.errno = errno
        self.function = function
        self.path = path
    }

    public var description: String {
        "\(function) \(path.map { "\($0): " } ?? "")\(errno)"
    }

    public var isNotFound: Bool { errno == .noSuchFileOrDirectory }
    public var isPermissionDenied: Bool { errno == .permissionDenied }
    public var isConnectionRefused: Bool { errno == .connectionRefused }
}

/// What the agent needs to know about a file before trusting it.
public struct FileStatus: Equatable, Sendable {
    public var mode: UInt32
    public var ownerUID: UInt32
    public var size: Int64
    public var isRegularFile: Bool
    public var isDirectory: Bool

    /// Group or others may read it: wrong for keys and for configs that hold keys.
    public var isReadableByOthers: Bool { mode & 0o044 != 0 }
}

public enum Files {
    /// Reads a whole file. `limit` guards against a wrong path pointing at something huge.
    public static func read(_ path: String, limit: Int = 16 << 20) throws(PosixError) -> [UInt8] {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
        } catch {
            throw PosixError(error as? Errno ?? .ioError, function: "open", path: path)
        }
        defer { try? fd.close() }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n: Int
            do {
                n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
            } catch {
                throw PosixError(error as? Errno ?? .ioError, function: "read", path: path)
            }
            if n == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > limit { throw PosixError(.fileTooLarge, function: "read", path: path) }
        }
    }

    /// Writes a whole file through a temporary name and a rename, so a reader never sees half of it.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: UInt32 = 0o644) throws(PosixError) {
        let temporary = path + ".tmp-\(getpid())"
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(
                FilePath(temporary), .writeOnly, options: [.create, .truncate, .closeOnExec],
                permissions: FilePermissions(rawValue: CModeT(mode)))
        } catch {
            throw PosixError(error as? Errno ?? .ioError, function: "open", path: temporary)
        }
        do {
            _ = try fd.writeAll(bytes)
            guard fsync(fd.rawValue) == 0 else { throw Errno(rawValue: Glibc.errno) }
            try fd.close()
        } catch {
            try? fd.close()
            unlink(temporary)
            throw PosixError(error as? Errno ?? .ioError, function: "write", path: temporary)
        }
        guard rename(temporary, path) == 0 else {
            let e = Errno(rawValue: Glibc.errno)
            unlink(temporary)
            throw PosixError(e, function: "rename", path: path)
        }
    }

    public static func status(_ path: String) throws(PosixError) -> FileStatus {
        var st = stat()
        guard stat(path, &st) == 0 else { throw PosixError(Errno(rawValue: Glibc.errno), function: "stat", path: path) }
        let type = st.st_mode & S_IFMT
        return FileStatus(
            mode: UInt32(st.st_mode & 0o7777), ownerUID: st.st_uid, size: Int64(st.st_size),
            isRegularFile: type == S_IFREG, isDirectory: type == S_IFDIR)
    }

    /// Whether the calling process may read the file (the real uid, as `access(2)` checks).
    public static func isReadable(_ path: String) -> Bool { access(path, R_OK) == 0 }

    public static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}

/// The clocks the agent stamps events with. The core never reads a clock itself.
public enum SystemClock {
    /// `CLOCK_REALTIME`: the wall clock, which may jump when NTP corrects it.
    public static func now() -> WallTimeNanoseconds {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}

extension SystemClock {
    /// `CLOCK_BOOTTIME`: counts from boot, includes suspend, never jumps. Rule timers and the
    /// time correction measure on it.
    public static func boottime() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_BOOTTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// `/proc/sys/kernel/random/boot_id`: which boot a boot time belongs to.
    public static func bootID() -> String {
        let bytes = (try? Files.read("/proc/sys/kernel/random/boot_id", limit: 64)) ?? []
        let text = String(decoding: bytes, as: UTF8.self).filter { $0 != "\n" }
        return text.isEmpty ? "unknown-boot" : text
    }

    /// Whether the kernel considers the wall clock synchronised (NTP, timesyncd, chrony): the
    /// `adjtimex()` answer is not `TIME_ERROR` and `STA_UNSYNC` is clear.
    public static func isSynchronized() -> Bool {
        vaktpost_clock_synchronized() == 1
    }
}

/// Nanoseconds since the Unix epoch (VaktpostPosix does not depend on the core's `WallTime`).
public typealias WallTimeNanoseconds = Int64

extension Files {
    /// A new private directory under `$TMPDIR` (or /tmp).
    public static func makeTemporaryDirectory(prefix: String) throws(PosixError) -> String {
        let base = environment("TMPDIR") ?? "/tmp"
        var template = Array("\(base)/\(prefix)-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw PosixError(Errno(rawValue: Glibc.errno), function: "mkdtemp", path: base) }
        return String(cString: made)
    }

    /// Removes a file or an empty directory; a missing one is not an error.
    public static func remove(_ path: String) {
        if unlink(path) != 0 { rmdir(path) }
    }
}
