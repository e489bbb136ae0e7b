import Testing
@testable import Agent
@testable import VaktpostCore

/// `RuleEngine.takeIn`: the rules a stand-in ran afresh while the outbox's open hung, taken into
/// the rule state saved in the outbox when the open returns (home.toml: the night window is
/// 22:00-07:00, not back in bed within 30 minutes, the bed's debounce 10 s).
@Suite struct StandInRulesTests {
    let engine: RuleEngine
    let bed = SensorID("bed")!

    init() throws {
        let (config, zone) = try fixtureConfig("home")
        engine = RuleEngine(config: config, zone: zone)
    }

    /// One night: from noon on the 24th to noon on the 25th.
    func at(_ time: String) -> WallTime { RFC3339.parse("2026-11-\(time < "12" ? 25 : 24)T\(time)+01:00")!.time }

    func factory(_ seed: UInt64) -> EventFactory {
        EventFactory(rng: SplitMix64(seed: seed)) { EventTime(wall: $0, utcOffsetSeconds: 3600, boottimeNanoseconds: 0, bootID: "b", clockSynced: true) }
    }

    /// Runs one engine through bed readings (`true`: in bed), then to `until`.
    func run(_ readings: [(String, Bool)], until: String? = nil, from state: EngineState = EngineState(), seed: UInt64) -> (EngineState, [Event]) {
        var state = state, events = factory(seed)
        for (time, inBed) in readings {
            engine.handle(Reading(sensor: bed, receivedAt: at(time), values: ReadingValues(occupied: inBed)), state: &state, events: &events)
        }
        if let until { engine.advance(&state, to: at(until), events: &events) }
        return (state, events.take())
    }

    /// The outbox's rule state taken over at `time`: `theirs` taken in, then the engine advanced.
    func takeOver(_ saved: EngineState, _ theirs: EngineState, at time: String) -> (EngineState, [Event]) {
        var state = saved, events = factory(9)
        engine.takeIn(standIn: theirs, into: &state, events: &events)
        engine.advance(&state, to: at(time), events: &events)
        return (state, events.take())
    }

    func alarms(_ events: [Event]) -> [(EventState, String)] {
        events.filter { $0.type == .bedNotReturned }.map { ($0.state, $0.occurredAt.wall.description) }
    }

    @Test func aResidentWhoLeftBedWhileTheCardHungIsAlarmedAtTheTakeover() {
        let (saved, _) = run([("23:00:00", true)], seed: 1)
        // The stand-in's first reading: out of bed. Afresh, its rules take that for the state.
        let (theirs, theirEvents) = run([("01:30:00", false), ("01:35:00", false)], until: "02:40:00", seed: 2)
        #expect(theirEvents.isEmpty, "the stand-in alone never alarms")
        #expect(alarms(takeOver(saved, EngineState(), at: "03:00:00").1).isEmpty, "nor does the outbox alone")

        let (state, events) = takeOver(saved, theirs, at: "03:00:00")
        #expect(events.filter { $0.type == .bedNotReturned }.map(\.occurredAt.wall) == [at("02:00:00")],
                "30 minutes from the first reading the stand-in heard, raised when the outbox took over")
        #expect(events.filter { $0.type == .bedState }.count == 1)
        #expect(state.sensors[bed]?.lastHeard == at("01:35:00"))
    }

    @Test func theOutboxsTimerFiresUnlessTheStandInHeardTheResidentBack() {
        // Out of bed since 00:50: the alarm was due at 01:20; the card hung from 01:00.
        let (saved, _) = run([("23:00:00", true), ("00:50:00", false), ("00:55:00", false)], seed: 1)
        let (stillOut, _) = run([("01:05:00", false)], seed: 2)
        #expect(takeOver(saved, stillOut, at: "01:30:00").1.filter { $0.type == .bedNotReturned }.map(\.occurredAt.wall) == [at("01:20:00")])

        let (back, _) = run([("01:05:00", true)], seed: 2)
        let (state, events) = takeOver(saved, back, at: "01:30:00")
        #expect(alarms(events).isEmpty, "back in bed at 01:05, before the alarm was due")
        #expect(state.sensors[bed]?.channels[.occupied]?.stable == true)
    }

    @Test func anAlarmTheStandInRaisedIsItsOwnAndItsReturnClearsIt() throws {
        let (saved, _) = run([("23:00:00", true)], seed: 1)
        let (theirs, theirEvents) = run([("01:00:00", true), ("01:20:00", false), ("01:25:00", false)], until: "01:55:00", seed: 2)
        let raised = try #require(theirEvents.first { $0.type == .bedNotReturned && $0.state == .active })

        var (state, events) = takeOver(saved, theirs, at: "02:00:00")
        #expect(alarms(events).isEmpty, "not raised a second time")
        var more = factory(3)
        engine.handle(Reading(sensor: bed, receivedAt: at("02:10:00"), values: ReadingValues(occupied: true)), state: &state, events: &more)
        engine.advance(&state, to: at("02:11:00"), events: &more)
        events = more.take()
        #expect(events.filter { $0.type == .bedNotReturned }.map(\.state) == [.cleared])
        #expect(events.first { $0.type == .bedNotReturned }?.correlationID == raised.eventID, "the stand-in's alarm, cleared")
    }

    @Test func anOutboxAlarmIsClearedByAReturnTheStandInSawAndItsNewTimerRuns() throws {
        // Out of bed since 00:00, alarmed at 00:30; the card hung at 00:40.
        let (saved, savedEvents) = run([("23:00:00", true), ("00:00:00", false), ("00:05:00", false)], until: "00:40:00", seed: 1)
        let open = try #require(savedEvents.first { $0.type == .bedNotReturned })
        // The stand-in: still out at 01:00, back at 01:10, out again at 01:30.
        let (theirs, _) = run([("01:00:00", false), ("01:10:00", true), ("01:30:00", false)], until: "01:40:00", seed: 2)

        let (_, events) = takeOver(saved, theirs, at: "02:05:00")
        let bedAlarms = events.filter { $0.type == .bedNotReturned }
        #expect(bedAlarms.map(\.state) == [.cleared, .active])
        #expect(bedAlarms.first?.correlationID == open.eventID)
        #expect(bedAlarms.last?.occurredAt.wall == at("02:00:00"), "30 minutes from leaving again at 01:30")
    }

    @Test func aCheckBothRulesMadeIsRaisedOnceUnderTheStandInsID() throws {
        // Still in bed at 09:00 (not up by nine): the stand-in raised it; replaying its readings,
        // the outbox's rules reach 09:00 too.
        let (saved, _) = run([("23:00:00", true)], seed: 1)
        let (theirs, theirEvents) = run([("08:00:00", true), ("09:20:00", true)], until: "09:25:00", seed: 2)
        let raised = try #require(theirEvents.first { $0.type == .bedNotUp })
        var (state, events) = takeOver(saved, theirs, at: "09:30:00")
        #expect(events.filter { $0.type == .bedNotUp }.isEmpty, "not a second time")
        var more = factory(3)
        engine.handle(Reading(sensor: bed, receivedAt: at("09:40:00"), values: ReadingValues(occupied: false)), state: &state, events: &more)
        engine.advance(&state, to: at("09:41:00"), events: &more)
        events = more.take()
        #expect(events.filter { $0.type == .bedNotUp }.map(\.correlationID) == [raised.eventID], "up at 09:40: the stand-in's alarm, cleared")
    }

    @Test func aFallTheStandInRaisedIsClearedByTheAllClearAfterTheTakeover() throws {
        let fall = SensorID("fall")!
        let (saved, _) = run([("23:00:00", true)], seed: 1)
        var theirs = EngineState(), theirEvents = factory(2)
        engine.handle(Reading(sensor: fall, receivedAt: at("01:00:00"), values: ReadingValues(fall: true)), state: &theirs, events: &theirEvents)
        let raised = try #require(theirEvents.take().first { $0.type == .fallDetected })

        var (state, events) = takeOver(saved, theirs, at: "01:10:00")
        #expect(events.filter { $0.type == .fallDetected }.isEmpty)
        var more = factory(3)
        engine.handle(Reading(sensor: fall, receivedAt: at("01:20:00"), values: ReadingValues(fall: false)), state: &state, events: &more)
        events = more.take()
        #expect(events.filter { $0.type == .fallDetected }.map(\.state) == [.cleared])
        #expect(events.first { $0.type == .fallDetected }?.correlationID == raised.eventID)
    }

    @Test func takingInTwiceChangesNothingTheFirstDidNot() {
        let (saved, _) = run([("23:00:00", true)], seed: 1)
        let (theirs, _) = run([("01:30:00", false), ("01:35:00", false)], seed: 2)
        var state = saved, events = factory(9)
        engine.takeIn(standIn: theirs, into: &state, events: &events)
        engine.advance(&state, to: at("03:00:00"), events: &events)
        _ = events.take()
        let once = state
        engine.takeIn(standIn: theirs, into: &state, events: &events)
        engine.advance(&state, to: at("03:00:00"), events: &events)
        #expect(events.take().isEmpty, "a crash before the first was noted done takes it in again")
        #expect(state.rules == once.rules)
    }

    @Test func aStandInThatRanNothingChangesNothing() {
        let (saved, _) = run([("23:00:00", true), ("00:50:00", false), ("00:55:00", false)], seed: 1)
        var state = saved, events = factory(9)
        engine.takeIn(standIn: EngineState(), into: &state, events: &events)
        #expect(state == saved)
        #expect(events.take().isEmpty)
    }

    @Test func theFirstReadingMarkSurvivesTheSavedState() throws {
        let (theirs, _) = run([("01:30:00", false)], seed: 2)
        #expect(theirs.sensors[bed]?.channels[.occupied]?.firstReading == true)
        #expect(try EngineState(json: theirs.json) == theirs)
        let (changed, _) = run([("01:30:00", false), ("01:40:00", true)], until: "01:41:00", seed: 2)
        #expect(changed.sensors[bed]?.channels[.occupied]?.firstReading == false)
    }
}

/// Technical conditions (supervised.toml: the back door must be heard every hour).
@Suite struct StandInConditionsTests {
    @Test func oneSilentConditionPerSensorAfterTheTakeover() throws {
        let (config, zone) = try fixtureConfig("supervised")
        let engine = RuleEngine(config: config, zone: zone)
        let door = SensorID("back-door")!
        func at(_ time: String) -> WallTime { RFC3339.parse("2026-11-24T\(time)Z")!.time }
        var events = EventFactory(rng: SplitMix64(seed: 1)) { EventTime(wall: $0, utcOffsetSeconds: 0, boottimeNanoseconds: 0, bootID: "b", clockSynced: true) }
        func heard(_ time: String, _ state: inout EngineState) {
            engine.handle(Reading(sensor: door, receivedAt: at(time), values: ReadingValues(open: false)), state: &state, events: &events)
        }

        // Silent in the outbox since 01:00; the stand-in heard the door at 02:30.
        var saved = EngineState()
        heard("00:00:00", &saved)
        engine.advance(&saved, to: at("01:30:00"), events: &events)
        let silent = try #require(saved.sensors[door]?.silent)
        var heardAgain = EngineState()
        heard("02:30:00", &heardAgain)
        _ = events.take()
        var state = saved
        engine.takeIn(standIn: heardAgain, into: &state, events: &events)
        let cleared = events.take().filter { $0.type == .sensorSilent }
        #expect(cleared.map(\.state) == [.cleared])
        #expect(cleared.first?.correlationID == silent)

        // The stand-in never heard it and raised its own: that one is the sensor's, not a second.
        var quiet = EngineState()
        engine.advance(&quiet, to: at("02:00:00"), events: &events)  // started at 02:00
        engine.advance(&quiet, to: at("03:10:00"), events: &events)
        let theirs = try #require(quiet.sensors[door]?.silent)
        var fresh = EngineState()
        heard("01:30:00", &fresh)
        engine.advance(&fresh, to: at("01:40:00"), events: &events)
        _ = events.take()
        engine.takeIn(standIn: quiet, into: &fresh, events: &events)
        engine.advance(&fresh, to: at("03:20:00"), events: &events)
        #expect(events.take().filter { $0.type == .sensorSilent }.isEmpty, "not raised again")
        #expect(fresh.sensors[door]?.silent == theirs)

        // Both had it open: the stand-in's duplicate is cleared, the outbox's stays.
        var both = saved
        engine.takeIn(standIn: quiet, into: &both, events: &events)
        let duplicate = events.take().filter { $0.type == .sensorSilent }
        #expect(duplicate.map(\.state) == [.cleared])
        #expect(duplicate.first?.correlationID == theirs)
        #expect(both.sensors[door]?.silent == silent)
    }
}
