import Foundation
import SQLiteStore
import Synchronization
import TestSupport
import Testing
@testable import Uplink

/// The reference receiver is the yardstick of every benchmark, and the harness works it through
/// its admin API while nineteen agents load its disk. Its SQLite work used to run on the
/// concurrency pool's threads (one per core): with the disk slow, every thread waited in a write
/// or for the store's lock, and nothing else was answered, the fault switches neither (a harness
/// run gave up on a switch unanswered for 10 s).
@Suite struct ReceiverStoreWaitTests {
    @Test func aStoreKeptWaitingHoldsUpNoFaultSwitch() throws {
        let server = try ReceiverProcess()
        // Another writer holds the database: each write of the receiver waits (SQLite's busy
        // timeout, 5 s), and the requests behind it wait for the store's lock, as behind a card
        // whose syncs stall.
        let holder = try Connection(path: server.directory + "/receiver.sqlite")
        try holder.execute("BEGIN IMMEDIATE")
        var released = false
        defer { if !released { try? holder.execute("ROLLBACK") } }
        let heartbeat = Array(#"{"sentAt":"2026-12-06T21:00:00.000Z","outbox":{"depth":0}}"#.utf8)
        // More requests than the pool has threads, on any machine.
        let count = 2 * ProcessInfo.processInfo.activeProcessorCount + 2
        let answered = Mutex<[Int]>([])
        let threads = (0..<count).map { _ in
            Thread {
                let status = (try? HTTPClient(tls: hub1).send("POST", server.url("/v1/hubs/hub-0001/heartbeat"), body: heartbeat).status) ?? -1
                answered.withLock { $0.append(status) }
            }
        }
        threads.forEach { $0.start() }
        Thread.sleep(forTimeInterval: 1.5)  // every heartbeat sent and waiting in the receiver
        #expect(answered.withLock { $0.isEmpty }, "the heartbeats wait for the store")

        let clock = ContinuousClock()
        let took = try clock.measure { try server.faults(["failRate": 0.0]) }
        #expect(took < .seconds(2), "a fault switch is answered while the store waits: \(took)")

        try holder.execute("ROLLBACK")
        released = true
        #expect(waitUntil(30) { answered.withLock { $0.count } == count })
        #expect(answered.withLock { $0.allSatisfy { $0 == 200 } }, "\(answered.withLock { $0 })")
    }
}
