import Synchronization
import Testing
@testable import Agent
import VaktpostCore

/// The daemon's time: boot time moves it, a wall-clock step only when the clock is synchronised.
@Suite struct TimelineTests {
    final class Clocks: Sendable {
        let wall = Mutex(WallTime(secondsSinceEpoch: 1_795_000_000))
        let boot = Mutex(UInt64(1_000_000_000_000))
        func pass(_ seconds: Int64) {
            wall.withLock { $0 = $0 + .seconds(seconds) }
            boot.withLock { $0 += UInt64(seconds) * 1_000_000_000 }
        }
        func step(_ seconds: Int64) { wall.withLock { $0 = $0 + .seconds(seconds) } }
    }

    func timeline(_ c: Clocks, synced: Bool) -> Timeline {
        Timeline(wall: { c.wall.withLock { $0 } }, boottime: { c.boot.withLock { $0 } }, synced: synced)
    }

    @Test func anUnsynchronisedClockJumpingAnHourEachWayIsReportedNotFollowed() {
        let c = Clocks()
        let t = timeline(c, synced: false)
        let start = t.now()
        c.pass(10)
        c.step(3600)
        #expect(t.follow(synced: false) == .ignored(.seconds(3600)))
        #expect(t.now() == start + .seconds(10), "rule timers keep running on boot time")
        #expect(t.follow(synced: false) == nil, "reported once")
        c.pass(10)
        c.step(-3600)
        #expect(t.follow(synced: false) == .ignored(.seconds(-3600)))
        #expect(t.now() == start + .seconds(20))
    }

    @Test func aSynchronisedClockSetOnPurposeIsFollowedAndSmallDriftIsNot() {
        let c = Clocks()
        let t = timeline(c, synced: true)
        c.step(30)
        #expect(t.follow(synced: true) == nil, "under a minute: slewed, not a step")
        c.step(3600)
        #expect(t.follow(synced: true) == .followed(.seconds(3630)))
        #expect(t.now() == c.wall.withLock { $0 })
    }

    @Test func theFirstSynchronisationSetsTheTimeWithoutCallingItAStep() {
        let c = Clocks()
        let t = timeline(c, synced: false)
        c.step(-86_400 * 400)  // an RTC-less hub that booted in the past, say
        _ = t.follow(synced: false)
        c.step(86_400 * 400)
        #expect(t.follow(synced: true) == nil)
        #expect(t.now() == c.wall.withLock { $0 })
    }
}
