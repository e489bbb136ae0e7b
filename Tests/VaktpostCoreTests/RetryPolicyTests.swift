import Testing
@testable import VaktpostCore

@Suite struct RetryPolicyTests {
    @Test func fullJitterStaysUnderTheGrowingCeilingAndTheCap() {
        var rng = SplitMix64(seed: 3)
        for attempt in 0..<12 {
            let ceiling = min(Duration.seconds(8), .milliseconds(500 << attempt))
            for _ in 0..<200 {
                let d = Backoff.alarm.delay(attempt: attempt, using: &rng)
                #expect(d >= .zero && d <= ceiling)
            }
        }
        // The bulk lane waits up to 5 minutes; over many draws it reaches well past the alarm cap.
        let longest = (0..<200).map { _ in Backoff.bulk.delay(attempt: 20, using: &rng) }.max()!
        #expect(longest > .seconds(200) && longest <= .seconds(300))
    }

    @Test func retryAfterIsAFloor() {
        var rng = SplitMix64(seed: 4)
        for _ in 0..<50 { #expect(Backoff.alarm.delay(attempt: 0, retryAfter: .seconds(20), using: &rng) >= .seconds(20)) }
    }

    @Test(arguments: [
        (200, DeliveryVerdict.delivered), (202, .delivered), (400, .reject), (422, .reject), (404, .reject),
        (401, .unauthorized), (403, .unauthorized), (408, .retry), (409, .retry), (425, .retry), (429, .retry), (500, .retry), (503, .retry),
    ])
    func statusCodes(status: Int, verdict: DeliveryVerdict) {
        #expect(DeliveryVerdict(status: status) == verdict)
    }

    @Test func retryAfterReadsSecondsAndHTTPDates() {
        let now = RFC3339.parse("1994-11-06T08:49:00Z")!.time
        #expect(RetryAfter.parse("120", now: now) == .seconds(120))
        #expect(RetryAfter.parse(" 0 ", now: now) == .zero)
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:37 GMT", now: now) == .seconds(37))
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:48:00 GMT", now: now) == .zero)  // in the past: go now
        #expect(RetryAfter.parse("soon", now: now) == nil)
        #expect(RetryAfter.parse("-5", now: now) == nil)
    }
}

@Test func retryAfterWithTheLinesCRLFStillReads() {
    #expect(RetryAfter.parse("7\r\n", now: WallTime(secondsSinceEpoch: 0)) == .seconds(7))
}

@Suite struct LinkSupervisorTests {
    let t0 = WallTime(secondsSinceEpoch: 1_790_000_000)

    @Test func lostAfterThreeSilentIntervalsRestoredWithTheOutageLength() {
        var link = LinkSupervisor(heartbeat: .seconds(60), startedAt: t0)
        #expect(link.tick(at: t0 + .seconds(179)) == nil)
        #expect(link.succeeded(at: t0 + .seconds(100)) == nil)
        #expect(link.tick(at: t0 + .seconds(279)) == nil)
        #expect(link.tick(at: t0 + .seconds(280)) == .lost(since: t0 + .seconds(100)))
        #expect(link.tick(at: t0 + .seconds(900)) == nil)  // raised once
        #expect(link.succeeded(at: t0 + .seconds(1000)) == .restored(downFor: .seconds(900)))
        #expect(link.nextCheck == t0 + .seconds(1180))
    }
}
