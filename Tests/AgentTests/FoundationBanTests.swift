#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
import VaktpostPosix

/// `import Foundation` pulls ICU into the agent (+44 MB). This fails the build the moment one appears.
@Suite struct FoundationBanTests {
    func swiftFiles(under dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix(".") { continue }
            let path = dir + "/" + name
            if name.hasSuffix(".swift") { out.append(path) } else if (try? Files.status(path).isDirectory) == true { out += swiftFiles(under: path) }
        }
        return out
    }

    /// `import Foundation`, `@preconcurrency public import Foundation`, `import struct Foundation.Data` all name Foundation.
    func importedModule(_ line: Substring) -> String? {
        let modifiers: Set<Substring> = ["@preconcurrency", "@_exported", "@testable", "public", "internal", "private", "fileprivate", "package"]
        let words = line.split(separator: " ").filter { !modifiers.contains($0) }
        guard words.count >= 2, words[0] == "import" else { return nil }
        let kinds: Set<Substring> = ["struct", "class", "enum", "protocol", "func", "var", "let", "typealias"]
        let path = kinds.contains(words[1]) && words.count >= 3 ? words[2] : words[1]
        return path.split(separator: ".").first.map(String.init)
    }

    @Test func theCheckRecognisesEveryFormOfTheImport() {
        #expect(importedModule("import Foundation") == "Foundation")
        #expect(importedModule("@preconcurrency public import Foundation") == "Foundation")
        #expect(importedModule("import struct Foundation.Data") == "Foundation")
        #expect(importedModule("import FoundationEssentials") == "FoundationEssentials")
        #expect(importedModule("// import Foundation") == nil)
    }

    @Test func noAgentModuleImportsFoundation() throws {
        let files = swiftFiles(under: repositoryRoot + "/Sources")
        #expect(files.count > 10, "found only \(files.count) sources under \(repositoryRoot)/Sources")
        for file in files {
            let text = String(decoding: try Files.read(file), as: UTF8.self)
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                if importedModule(line) == "Foundation" {
                    Issue.record("\(file):\(n + 1): \(line): use FoundationEssentials or the stdlib")
                }
            }
        }
    }
}
