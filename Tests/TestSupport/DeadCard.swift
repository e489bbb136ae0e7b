import Glibc

/// A card that has died under the running agent: every open file of the database at `path` (the
/// database and its WAL; the shared-memory index lives in RAM) is made a directory in place, so
/// each read and write of them fails, until `revive()` puts the files back.
public final class DeadCard {
    var saved: [(fd: Int32, copy: Int32)] = []

    public init(_ path: String) throws {
        let directory = open("/", O_RDONLY | O_DIRECTORY)
        defer { close(directory) }
        let open = (Int32(3)..<1024).filter { fd in
            var target = [CChar](repeating: 0, count: 4096)
            let n = readlink("/proc/self/fd/\(fd)", &target, target.count - 1)
            let name = String(decoding: target[..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return name == path || name == path + "-wal"
        }
        for fd in open {
            saved.append((fd, dup(fd)))
            dup2(directory, fd)
        }
        guard saved.count == 2 else { throw DeadCardError.filesNotOpen(path, found: saved.count) }
    }

    public func revive() {
        for (fd, copy) in saved {
            dup2(copy, fd)
            close(copy)
        }
        saved = []
    }
}

public enum DeadCardError: Error {
    case filesNotOpen(String, found: Int)
}
