import Testing
@testable import VaktpostCore

/// `sensor.refused`: a configured sensor whose packets the hub refuses (a wrong key, a counter
/// that went back after a battery change) is sending but not heard. Raised at the first refusal,
/// cleared once a packet is taken and a minute has passed without a refused one.
@Suite struct SensorRefusedTests {
    let button = SensorConfig(id: SensorID("fall-button")!, role: .fall, room: .bathroom, supervision: nil, batteryLow: 20, debounce: .zero,
                              transport: .ble, ble: nil, enocean: nil)
    let engine: RuleEngine
    let t0 = WallTime(secondsSinceEpoch: 1_795_000_000)
    let reason = "encryption counter 3 is older than the last accepted 5000: refused as a replay"

    init() {
        engine = RuleEngine(sensors: [button], rules: [], zone: .utc)
    }

    func factory() -> EventFactory {
        EventFactory(rng: SplitMix64(seed: 3)) { EventTime(wall: $0, utcOffsetSeconds: 0, boottimeNanoseconds: 0, bootID: "b", clockSynced: true) }
    }

    func refuse(_ seconds: Int64, _ state: inout EngineState, _ events: inout EventFactory) {
        engine.refused(button.id, reason: reason, at: t0 + .seconds(seconds), state: &state, events: &events)
    }

    func take(_ seconds: Int64, _ state: inout EngineState, _ events: inout EventFactory) {
        engine.handle(Reading(sensor: button.id, receivedAt: t0 + .seconds(seconds), values: ReadingValues(battery: 90)), state: &state, events: &events)
    }

    func refusals(_ events: [Event]) -> [(EventState, Int64)] {
        events.filter { $0.type == .sensorRefused }.map { ($0.state, ($0.occurredAt.wall - t0).components.seconds) }
    }

    @Test func theFirstRefusalRaisesItOnceWithTheReason() throws {
        var state = EngineState(), events = factory()
        refuse(0, &state, &events)
        refuse(2, &state, &events)
        refuse(9, &state, &events)
        let raised = events.take()
        #expect(refusals(raised).map(\.0) == [.active])
        let event = try #require(raised.first)
        #expect(event.eventClass == .technical)
        #expect(event.sensor == button.id)
        #expect(event.data.first { $0.0 == "reason" }?.1 == .string(reason))
        #expect(event.codes.scaipStatus == "0066", "maintenance urgently needed")
        #expect(event.codes.scaipDeviceType == SensorRole.fall.scaipDeviceType)
        engine.advance(&state, to: t0 + .seconds(86_400), events: &events)
        #expect(events.take().isEmpty, "nothing taken: it stays open")
    }

    @Test func aTakenPacketClearsItAMinuteAfterTheLastRefusal() throws {
        var state = EngineState(), events = factory()
        refuse(0, &state, &events)
        refuse(5, &state, &events)
        let active = try #require(events.take().first)
        take(10, &state, &events)
        engine.advance(&state, to: t0 + .seconds(64), events: &events)
        #expect(events.take().isEmpty)
        #expect(engine.nextDeadline(state) == t0 + .seconds(65))
        engine.advance(&state, to: t0 + .seconds(65), events: &events)
        let cleared = events.take()
        #expect(refusals(cleared).map(\.0) == [.cleared])
        #expect(refusals(cleared).map(\.1) == [65])
        #expect(cleared.first?.correlationID == active.eventID)
        #expect(cleared.first?.data.first { $0.0 == "refusedPackets" }?.1 == .int(2))
    }

    @Test func aPacketTakenLongAfterTheLastRefusalClearsItAtOnce() {
        var state = EngineState(), events = factory()
        refuse(0, &state, &events)
        _ = events.take()
        take(600, &state, &events)
        #expect(refusals(events.take()).map { "\($0.0) \($0.1)" } == ["cleared 600"])
        refuse(700, &state, &events)
        #expect(refusals(events.take()).map { "\($0.0) \($0.1)" } == ["active 700"], "a new episode, a new event")
    }

    /// A fall button pressed, its battery changed (its counter starts again), and pressed to
    /// try it, within a minute: the second press is refused a moment after the first was taken.
    /// Raised a minute after it, nothing having been taken since.
    @Test func aRefusalJustAfterATakenPacketIsRaisedAMinuteLater() throws {
        var state = EngineState(), events = factory()
        take(0, &state, &events)
        refuse(40, &state, &events)
        refuse(41, &state, &events)
        engine.advance(&state, to: t0 + .seconds(99), events: &events)
        #expect(events.take().isEmpty)
        #expect(engine.nextDeadline(state) == t0 + .seconds(100))
        engine.advance(&state, to: t0 + .seconds(100), events: &events)
        let raised = events.take()
        #expect(refusals(raised).map { "\($0.0) \($0.1)" } == ["active 100"])
        #expect(raised.first?.data.first { $0.0 == "reason" }?.1 == .string(reason))
        #expect(raised.first?.data.first { $0.0 == "refusedPackets" }?.1 == .int(2))
        take(300, &state, &events)
        #expect(refusals(events.take()).map { "\($0.0) \($0.1)" } == ["cleared 300"])
    }

    /// A sensor whose packets are taken among refused ones (a second kind of packet the agent
    /// cannot read, someone replaying its old packets beside the real ones) is heard: nothing
    /// is raised, however long it goes on.
    @Test func refusalsAmongTakenPacketsRaiseNothing() {
        var state = EngineState(), events = factory()
        take(0, &state, &events)
        for s in stride(from: Int64(10), to: 3600, by: 30) {
            refuse(s, &state, &events)
            take(s + 20, &state, &events)
        }
        engine.advance(&state, to: t0 + .seconds(7200), events: &events)
        #expect(refusals(events.take()).isEmpty)
    }

    /// Once raised, refused packets among taken ones keep one condition open, not an active
    /// and a cleared per packet.
    @Test func refusalsAmongTakenPacketsKeepARaisedConditionOpen() {
        var state = EngineState(), events = factory()
        for s in stride(from: Int64(0), to: 600, by: 20) {
            refuse(s, &state, &events)
            take(s + 10, &state, &events)
        }
        engine.advance(&state, to: t0 + .seconds(639), events: &events)
        #expect(refusals(events.take()).map(\.0) == [.active])
        engine.advance(&state, to: t0 + .seconds(640), events: &events)
        let cleared = events.take()
        #expect(refusals(cleared).map(\.0) == [.cleared])
        #expect(cleared.first?.data.first { $0.0 == "refusedPackets" }?.1 == .int(30))
    }

    /// Saved with the rule state: after a restart the clearing carries the id the platform has.
    @Test func itSurvivesARestart() throws {
        var state = EngineState(), events = factory()
        refuse(0, &state, &events)
        refuse(1, &state, &events)
        let active = try #require(events.take().first)
        var restored = try EngineState(json: JSONValue.parse(state.json.serialized))
        #expect(restored == state)
        var after = factory()
        take(100, &restored, &after)
        let cleared = after.take().filter { $0.type == .sensorRefused }
        #expect(cleared.map(\.correlationID) == [active.eventID])
        #expect(cleared.first?.data.first { $0.0 == "refusedPackets" }?.1 == .int(2))
    }

    /// A refusal waiting to be raised is saved too: raised after the restart, on time.
    @Test func aWaitingRefusalSurvivesARestart() throws {
        var state = EngineState(), events = factory()
        take(0, &state, &events)
        refuse(30, &state, &events)
        #expect(events.take().filter { $0.type == .sensorRefused }.isEmpty)
        var restored = try EngineState(json: JSONValue.parse(state.json.serialized))
        #expect(restored == state)
        engine.advance(&restored, to: t0 + .seconds(600), events: &events)
        #expect(refusals(events.take()).map { "\($0.0) \($0.1)" } == ["active 90"])
    }

    @Test func anUnconfiguredSensorRaisesNothing() {
        var state = EngineState(), events = factory()
        engine.refused(SensorID("stranger")!, reason: reason, at: t0, state: &state, events: &events)
        #expect(events.take().isEmpty)
    }

    /// The rules of a stand-in (the outbox's open hung at start) that saw the refusals: their
    /// condition is kept, with its id, and counts on.
    @Test func aStandInsRefusalIsTakenIn() throws {
        var theirs = EngineState(), theirEvents = factory()
        refuse(0, &theirs, &theirEvents)
        refuse(3, &theirs, &theirEvents)
        let theirActive = try #require(theirEvents.take().first)
        var saved = EngineState(), events = factory()
        engine.advance(&saved, to: t0 - .seconds(60), events: &events)
        engine.takeIn(standIn: theirs, into: &saved, events: &events)
        #expect(events.take().isEmpty)
        take(200, &saved, &events)
        let cleared = events.take().filter { $0.type == .sensorRefused }
        #expect(cleared.map(\.correlationID) == [theirActive.eventID])
        #expect(cleared.first?.data.first { $0.0 == "refusedPackets" }?.1 == .int(2))
    }

    /// The stand-in's refusal still waiting (a packet taken just before it) waits on after the
    /// take-in, and is raised when its minute is up.
    @Test func aStandInsWaitingRefusalIsRaisedOnTime() {
        var theirs = EngineState(), theirEvents = factory()
        take(0, &theirs, &theirEvents)
        refuse(20, &theirs, &theirEvents)
        var saved = EngineState(), events = factory()
        engine.advance(&saved, to: t0 - .seconds(60), events: &events)
        engine.takeIn(standIn: theirs, into: &saved, events: &events)
        engine.advance(&saved, to: t0 + .seconds(79), events: &events)
        #expect(refusals(events.take()).isEmpty)
        engine.advance(&saved, to: t0 + .seconds(80), events: &events)
        #expect(refusals(events.take()).map { "\($0.0) \($0.1)" } == ["active 80"])
    }

    /// Both had it open: one condition stays (the outbox's), the stand-in's is cleared as its
    /// duplicate, and the packets both refused count together.
    @Test func aRefusalBothHadOpenIsOneAfterTheTakeIn() throws {
        var saved = EngineState(), events = factory()
        refuse(0, &saved, &events)
        let mine = try #require(events.take().first)
        var theirs = EngineState(), theirEvents = factory()
        refuse(30, &theirs, &theirEvents)
        refuse(31, &theirs, &theirEvents)
        let their = try #require(theirEvents.take().first)
        engine.takeIn(standIn: theirs, into: &saved, events: &events)
        let duplicate = events.take().filter { $0.type == .sensorRefused }
        #expect(duplicate.map(\.state) == [.cleared])
        #expect(duplicate.first?.correlationID == their.eventID)
        take(60, &saved, &events)
        #expect(events.take().filter { $0.type == .sensorRefused }.isEmpty, "a minute from the stand-in's last refusal, not the outbox's")
        take(91, &saved, &events)
        let cleared = events.take().filter { $0.type == .sensorRefused }
        #expect(cleared.map(\.correlationID) == [mine.eventID])
        #expect(cleared.first?.data.first { $0.0 == "refusedPackets" }?.1 == .int(3))
    }
}
