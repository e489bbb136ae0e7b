import Testing
@testable import Agent
import VaktpostCore

/// Random scenarios over the fixture home, across both 2026 daylight-saving nights.
struct ScenarioGenerator {
    var rng: SplitMix64

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }

    /// Readings with gaps from a second (debounce chatter) to two hours (timers, windows).
    mutating func steps(from start: WallTime, count: Int, restarts: Double = 0) -> [ScenarioStep] {
        var t = start
        var out: [ScenarioStep] = []
        for _ in 0..<count {
            let gap = chance(0.3) ? int(1...15) : (chance(0.5) ? int(60...1800) : int(1800...7200))
            t = t + .seconds(gap)
            if chance(restarts) { out.append(.restart(at: t)); continue }
            var v = ReadingValues()
            let sensor: String
            switch int(0...9) {
            case 0...3: sensor = "bed"; v.occupied = chance(0.5)
            case 4...5: sensor = "front-door"; v.open = chance(0.5)
            case 6: sensor = "fall"; v.fall = chance(0.6)
            case 7: sensor = "alarm-button"; v.pressed = true
            default: sensor = "hall"; v.motion = chance(0.5)
            }
            if chance(0.1) { v.battery = int(10...40) }
            if chance(0.05) { v.tamper = chance(0.5) }
            out.append(.reading(Reading(sensor: SensorID(sensor)!, receivedAt: t, values: v)))
        }
        out.append(.end(at: t + .seconds(3 * 3600)))
        return out
    }
}

@Suite struct RuleEnginePropertyTests {
    static let starts = ["2026-03-28T18:00:00+01:00", "2026-10-24T18:00:00+02:00", "2026-11-23T06:00:00+01:00"]
    static let seeds: [UInt64] = Array(1...12)

    func scenario(seed: UInt64, start: String, restarts: Double = 0) -> [ScenarioStep] {
        var g = ScenarioGenerator(rng: SplitMix64(seed: seed))
        return g.steps(from: RFC3339.parse(start)!.time, count: 150, restarts: restarts)
    }

    @Test(arguments: seeds, starts)
    func sameInputGivesTheSameOutput(seed: UInt64, start: String) throws {
        let (config, zone) = try fixtureConfig("home")
        let steps = scenario(seed: seed, start: start)
        let a = try replay(config, zone, steps, seed: seed).map { Scenario.outputLine($0, zone: zone) }
        let b = try replay(config, zone, steps, seed: seed).map { Scenario.outputLine($0, zone: zone) }
        #expect(a == b)
        #expect(!a.isEmpty)
    }

    @Test(arguments: seeds, starts)
    func everyClearedFollowsItsActive(seed: UInt64, start: String) throws {
        let (config, zone) = try fixtureConfig("home")
        let events = try replay(config, zone, scenario(seed: seed, start: start), seed: seed)
        checkCorrelation(events)
        // Events come out in time order.
        #expect(zip(events, events.dropFirst()).allSatisfy { $0.occurredAt.wall <= $1.occurredAt.wall })
    }

    /// The moment that makes a window-bound alarm lies inside its window: the due time for
    /// not-back-in-bed and inactivity, the opening for door-at-night.
    @Test(arguments: seeds, starts)
    func windowBoundAlarmsNeverFireOutsideTheirWindow(seed: UInt64, start: String) throws {
        let (config, zone) = try fixtureConfig("home")
        let events = try replay(config, zone, scenario(seed: seed, start: start), seed: seed)
        let night = try DailyWindow.parse("22:00-07:00").get()
        let doorNight = try DailyWindow.parse("23:00-06:00").get()
        let day = try DailyWindow.parse("08:00-20:00").get()
        for e in events where e.state == .active {
            let local = zone.localTime(e.occurredAt.wall)
            switch e.type {
            case .bedNotReturned:
                #expect(night.contains(secondOfDay: local.secondOfDay), "bed.not_returned at \(zone.format(e.occurredAt.wall))")
                let left = RFC3339.parse(JSONValue.object(e.data)["leftBedAt"]!.stringValue!)!.time
                #expect(e.occurredAt.wall - left == .seconds(1800))
            case .doorOpenedAtNight:
                let opened = RFC3339.parse(JSONValue.object(e.data)["openedAt"]!.stringValue!)!.time
                #expect(doorNight.contains(secondOfDay: zone.localTime(opened).secondOfDay))
            case .activityNone:
                #expect(day.contains(secondOfDay: local.secondOfDay), "activity.none at \(zone.format(e.occurredAt.wall))")
            case .bedNotUp:
                #expect((local.hour, local.minute, local.second) == (9, 0, 0))
            default:
                break
            }
        }
    }

    /// Restarting the agent anywhere changes nothing: the same events, with the same ids, at the same times.
    @Test(arguments: seeds, starts)
    func restartsAnywhereChangeNothing(seed: UInt64, start: String) throws {
        let (config, zone) = try fixtureConfig("home")
        let withRestarts = scenario(seed: seed, start: start, restarts: 0.15)
        let without = withRestarts.filter { if case .restart = $0 { return false } else { return true } }
        #expect(withRestarts.count > without.count)
        let a = try replay(config, zone, withRestarts, seed: seed).map { Scenario.outputLine($0, zone: zone) }
        let b = try replay(config, zone, without, seed: seed).map { Scenario.outputLine($0, zone: zone) }
        #expect(a == b)
    }

    /// The properties above only mean something if the random scenarios reach every alarm.
    @Test func randomScenariosReachEveryAlarmAndCondition() throws {
        let (config, zone) = try fixtureConfig("home")
        var seen: Set<String> = []
        for seed in Self.seeds {
            for start in Self.starts {
                for e in try replay(config, zone, scenario(seed: seed, start: start), seed: seed) {
                    seen.insert("\(e.type.rawValue) \(e.state.rawValue)")
                }
            }
        }
        for expected in ["bed.not_returned active", "bed.not_returned cleared", "bed.not_up active", "door.opened_at_night active",
                         "door.left_open active", "fall.detected active", "fall.detected update", "fall.detected cleared",
                         "button.pressed active", "activity.none active", "activity.none cleared", "sensor.battery_low active",
                         "sensor.battery_low cleared", "sensor.tamper active"] {
            #expect(seen.contains(expected), "no random scenario produced \(expected)")
        }
    }

    /// The saved form of the state restores to the same state, at every step of a long run.
    @Test(arguments: seeds)
    func stateSurvivesItsJSONForm(seed: UInt64) throws {
        let (config, zone) = try fixtureConfig("home")
        let engine = RuleEngine(config: config, zone: zone)
        var state = EngineState()
        var events = EventFactory(rng: SplitMix64(seed: seed)) { EventTime(wall: $0, utcOffsetSeconds: 0, boottimeNanoseconds: 0, bootID: "b", clockSynced: true) }
        for step in scenario(seed: seed, start: Self.starts[0]) {
            if case .reading(let r) = step { engine.handle(r, state: &state, events: &events) }
            let restored = try EngineState(json: try JSONValue.parse(state.json.serialized))
            #expect(restored == state)
        }
    }
}
