import Testing
@testable import VaktpostCore

@Suite struct FloodWatchTests {
    let sensor = SensorConfig(id: SensorID("hall")!, role: .motion, room: .hallway, supervision: nil, batteryLow: 20, debounce: .zero,
                              transport: .enocean, ble: nil, enocean: nil)
    let t0 = WallTime(secondsSinceEpoch: 1_795_000_000)

    func factory() -> EventFactory {
        EventFactory(rng: SplitMix64(seed: 9)) { EventTime(wall: $0, utcOffsetSeconds: 0, boottimeNanoseconds: 0, bootID: "b", clockSynced: true) }
    }

    /// `count` readings spread evenly over `seconds`, from `start`.
    func hear(_ watch: inout FloodWatch, _ count: Int, over seconds: Double, from start: WallTime, _ events: inout EventFactory) {
        for i in 0..<count {
            watch.heard(sensor, at: start + .nanoseconds(Int64(Double(i) * seconds / Double(count) * 1e9)), events: &events)
        }
    }

    @Test func aRealSensorsPaceRaisesNothing() {
        var watch = FloodWatch()
        var events = factory()
        hear(&watch, 60, over: 60, from: t0, &events)  // one a second for a minute
        watch.tick(at: t0 + .seconds(120), sensors: [sensor.id: sensor], events: &events)
        #expect(events.take().isEmpty)
        #expect(watch.flooding.isEmpty)
    }

    @Test func aThousandASecondIsReportedOnceAndClearedWhenItStops() {
        var watch = FloodWatch()
        var events = factory()
        hear(&watch, 20_000, over: 20, from: t0, &events)  // 1000 a second for 20 s
        let raised = events.take()
        #expect(raised.map(\.type) == [.sensorFlooding], "once per episode, not per window")
        #expect(raised.first?.state == .active)
        #expect(raised.first?.sensor == sensor.id)
        #expect(raised.first?.occurredAt.wall == t0 + .seconds(5), "judged at the end of the first window")
        #expect(raised.first?.data.first { $0.0 == "readingsPerSecond" }?.1 == .int(1000))
        #expect(watch.flooding == [sensor.id])
        // It stops at 20 s: the window it was in (from 15 s) still counts as a flood when it
        // closes at 22 s; the next one, silent, ends the episode when it closes.
        watch.tick(at: t0 + .seconds(22), sensors: [sensor.id: sensor], events: &events)
        watch.tick(at: t0 + .seconds(26), sensors: [sensor.id: sensor], events: &events)
        #expect(events.take().isEmpty, "the silent window is not over yet")
        watch.tick(at: t0 + .seconds(27), sensors: [sensor.id: sensor], events: &events)
        let cleared = events.take()
        #expect(cleared.map(\.state) == [.cleared])
        #expect(cleared.first?.correlationID == raised.first?.eventID)
        #expect(cleared.first?.data.first { $0.0 == "readings" }?.1 == .int(20_000))
        #expect(watch.flooding.isEmpty)
    }

    @Test func aFloodThatSlowsToNormalIsCleared() {
        var watch = FloodWatch()
        var events = factory()
        hear(&watch, 500, over: 5, from: t0, &events)
        hear(&watch, 10, over: 5, from: t0 + .seconds(5), &events)
        hear(&watch, 10, over: 5, from: t0 + .seconds(10), &events)
        #expect(events.take().map(\.state) == [.active, .cleared])
    }
}
