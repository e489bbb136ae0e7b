import Foundation
import SQLiteStore
import Testing
@testable import Outbox
import VaktpostCore

/// A child process stores and acknowledges events in a loop, printing each id once the call
/// that stored it has returned; it is SIGKILLed at random moments and started again.
/// Afterwards: every id printed as stored is present (unless acknowledged), seq numbers only
/// ever grew, and SQLite's integrity check passes. (`Benchmarks/outbox_crash.py` does 1,000.)
@Suite struct OutboxCrashTests {
    struct Log {
        var stored: [(seq: UInt64, id: String)] = []
        var acked: Set<String> = []
        /// Ids being acknowledged when a kill landed: they may or may not have left.
        var maybeAcked: Set<String> = []
    }

    func runAndKill(probe: String, db: String, seed: Int, afterMilliseconds ms: Int) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: probe)
        process.arguments = ["crash-writer", db, String(seed)]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        usleep(useconds_t(ms * 1000))
        kill(process.processIdentifier, SIGKILL)
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal, "the writer stopped on its own: \(String(decoding: data.suffix(300), as: UTF8.self))")
        return String(decoding: data, as: UTF8.self)
    }

    @Test func sigkillAtRandomMomentsLosesNothingStoredAndNeverReusesASeq() throws {
        let probe = try builtProduct("outbox-probe")
        try withTemporaryDirectory { dir in
            let db = dir + "/outbox.sqlite"
            var log = Log()
            var rng = SplitMix64(seed: 2026)
            for run in 0..<60 {
                let output = try runAndKill(probe: probe, db: db, seed: run, afterMilliseconds: Int.random(in: 15...120, using: &rng))
                // A kill can cut the last line; only whole lines count.
                var lines = output.split(separator: "\n", omittingEmptySubsequences: false)
                if output.last != "\n" { lines.removeLast() }
                var settling: Set<String> = []
                for line in lines where !line.isEmpty {
                    let parts = line.split(separator: " ")
                    switch parts[0] {
                    case "stored": log.stored.append((UInt64(parts[1])!, String(parts[2])))
                    case "settling": settling = Set(parts[1].split(separator: ",").map(String.init))
                    case "acked":
                        log.acked.insert(String(parts[1]))
                        settling.remove(String(parts[1]))
                    case "error": Issue.record("writer failed: \(line)")
                    default: Issue.record("unexpected line: \(line)")
                    }
                }
                // A kill during an acknowledgement: those events may or may not have left. Only those.
                log.maybeAcked.formUnion(settling)
            }
            #expect(log.stored.count > 500, "the writer stored only \(log.stored.count) events in 60 runs")
            // Seqs only ever grow, across every kill and restart.
            #expect(zip(log.stored, log.stored.dropFirst()).allSatisfy { $0.seq < $1.seq })
            let c = try Connection(path: db)
            #expect(try c.text("PRAGMA integrity_check") == "ok")
            var present: Set<String> = []
            let s = try c.prepare("SELECT event_id FROM events")
            while try s.step() { present.insert(s.text(0)!) }
            var lost: [String] = []
            for (_, id) in log.stored where !present.contains(id) && !log.acked.contains(id) && !log.maybeAcked.contains(id) {
                lost.append(id)
            }
            #expect(lost.isEmpty, "\(lost.count) stored events are gone: \(lost.prefix(5))")
            // Nothing acknowledged came back.
            #expect(present.intersection(log.acked).isEmpty)
        }
    }
}
