#if canImport(Glibc)
import Glibc
#endif
import VaktpostPosix

/// A fresh directory for one test, removed afterwards. Paths never collide between parallel tests.
func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    var template = Array("/tmp/vaktpost-test-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { fatalError("mkdtemp failed") }
    let dir = String(cString: made)
    defer { removeTree(dir) }
    return try body(dir)
}

func removeTree(_ path: String) {
    if let d = opendir(path) {
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            removeTree(path + "/" + name)
        }
        closedir(d)
        rmdir(path)
    } else {
        unlink(path)
    }
}

func write(_ text: String, to path: String, mode: UInt32 = 0o644) throws {
    try Files.writeAtomically(path, Array(text.utf8), mode: mode)
    chmod(path, mode_t(mode))
}
