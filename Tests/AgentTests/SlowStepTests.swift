import Foundation
@testable import Agent
import Synchronization
import Testing

/// A start step that blocks (the outbox's open on a card that hangs) is said while it lasts.
@Suite struct SlowStepTests {
    @Test func aStepThatHangsIsSaidWhileItLastsAndWhenItReturns() {
        let said = Mutex<[Duration]>([])
        var returned: [Duration] = []
        let value = SlowStep.watch(after: .milliseconds(100), every: .milliseconds(100), waiting: { w in said.withLock { $0.append(w) } },
                                   returned: { returned.append($0) }) { () -> Int in
            usleep(450_000)
            return 7
        }
        #expect(value == 7)
        let waits = said.withLock { $0 }
        #expect(waits.count >= 2, "said at 0.1 s and again while it lasted: \(waits)")
        #expect(waits.first.map { $0 >= .milliseconds(100) } == true)
        #expect(waits == waits.sorted())
        #expect(returned.count == 1)
        #expect(returned.first.map { $0 >= .milliseconds(450) && $0 >= waits.last! } == true)
        usleep(250_000)
        #expect(said.withLock { $0.count } == waits.count, "nothing said after it returned")
    }

    @Test func aStepThatReturnsInTimeSaysNothing() throws {
        let said = Mutex(0)
        var returned = 0
        struct Refused: Error {}
        #expect(throws: Refused.self) {
            try SlowStep.watch(after: .milliseconds(100), every: .milliseconds(100), waiting: { _ in said.withLock { $0 += 1 } },
                               returned: { _ in returned += 1 }) { () throws -> Int in throw Refused() }
        }
        #expect(SlowStep.watch(after: .milliseconds(100), every: .milliseconds(100), waiting: { _ in said.withLock { $0 += 1 } },
                               returned: { _ in returned += 1 }) { 3 } == 3)
        usleep(300_000)
        #expect(said.withLock { $0 } == 0)
        #expect(returned == 0)
    }
}
