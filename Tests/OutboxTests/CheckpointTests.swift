import Foundation
import Synchronization
import Testing
@testable import Outbox
import VaktpostCore

/// Checkpoints run beside the writer (OutboxCheckpointer), not inside an alarm's commit.
@Suite struct CheckpointTests {
    func walSize(_ path: String) -> Int { ((try? FileManager.default.attributesOfItem(atPath: path + "-wal"))?[.size] as? Int) ?? 0 }

    @Test func theWALIsCheckpointedBesideTheWriterAndStartsOver() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let path = dir + "/outbox.sqlite"
            let outbox = try m.open(path)
            let checkpointer = try OutboxCheckpointer(path: path)
            let asked = Atomic<Int>(0)
            outbox.onWALGrowth { asked.add(1, ordering: .relaxed) }
            let payload = [("note", JSONValue.string(String(repeating: "x", count: 800)))]
            // Grow the WAL past 1 MB: the checkpointer is asked once, not at every commit.
            var appends = 0
            while walSize(path) < 1 << 20 {
                _ = try outbox.append((0..<10).map { _ in m.make(.bedState, .update, data: payload) })
                appends += 1
            }
            _ = try outbox.append([m.make(.bedState, .update, data: payload)])
            #expect(asked.load(ordering: .relaxed) == 1, "after \(appends) appends")
            // In a pause: everything is copied, and the next commit starts the WAL over.
            Thread.sleep(forTimeInterval: OutboxCheckpointer.quietBefore.seconds)
            #expect(outbox.walActivity.quietFor >= OutboxCheckpointer.quietBefore)
            #expect(try checkpointer.checkpoint())
            #expect(try checkpointer.checkpoint(), "a second look finds everything copied already")
            let alarm = m.make(.bedNotReturned)
            _ = try outbox.append([alarm])
            #expect(outbox.walActivity.quietFor < .seconds(1))
            // The WAL started over: growing past 1 MB again asks again.
            while walSize(path) < 1 << 20 || asked.load(ordering: .relaxed) < 2 {
                _ = try outbox.append((0..<10).map { _ in m.make(.bedState, .update, data: payload) })
                appends += 1
                if appends > 10_000 { break }
            }
            #expect(asked.load(ordering: .relaxed) == 2)
            #expect(try outbox.status().lanes[.alarm]?.depth == 1)
        }
    }

    /// Without a checkpointer (tools, tests) the commits themselves keep the WAL near 4 MB.
    @Test func withoutACheckpointerTheCommitsKeepTheWALSmall() throws {
        try withTemporaryDirectory { dir in
            let m = EventMaker()
            let path = dir + "/outbox.sqlite"
            let outbox = try m.open(path)
            let payload = [("note", JSONValue.string(String(repeating: "x", count: 800)))]
            var largest = 0
            for _ in 0..<2_000 {
                _ = try outbox.append((0..<10).map { _ in m.make(.bedState, .update, data: payload) })
                largest = max(largest, walSize(path))
            }
            #expect(largest < 6 << 20, "WAL grew to \(largest) bytes")
            #expect(try outbox.status().lanes[.bulk]?.depth == 20_000)
        }
    }

    @Test func aCheckpointerNeedsAnOutboxThatExists() throws {
        _ = try withTemporaryDirectory { dir in
            #expect(throws: (any Error).self) { try OutboxCheckpointer(path: dir + "/missing/outbox.sqlite") }
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
