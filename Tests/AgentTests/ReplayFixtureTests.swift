import Testing
import TestSupport
@testable import Agent
import VaktpostCore
import VaktpostPosix

let scenarios = repositoryRoot + "/Tests/Fixtures/scenarios"

/// Loads a fixture config (replay scope) with the real zone from the system tz database.
func fixtureConfig(_ name: String) throws -> (Config, TimeZoneRules) {
    let report = ConfigFile.check(path: "\(scenarios)/\(name).toml", scope: .replay)
    let config = try #require(report.config, "\(report.report.diagnostics)")
    return (config, try #require(report.timeZone))
}

/// Runs a replay the way `vaktpost replay` does, through a real state file.
func replay(_ config: Config, _ zone: TimeZoneRules, _ steps: [ScenarioStep], seed: UInt64 = 0) throws -> [Event] {
    try withTemporaryDirectory { dir in
        var out: [Event] = []
        try Replay(config: config, zone: zone, stateFile: dir + "/rules.state.json", seed: seed).run(steps) { out.append($0) }
        return out
    }
}

/// Every `cleared` or `update` belongs to an earlier `active` of the same type; an `active` names
/// itself; nothing is cleared twice.
func checkCorrelation(_ events: [Event]) {
    var open: [EventID: EventType] = [:]
    for e in events {
        switch e.state {
        case .active:
            #expect(e.correlationID == e.eventID, "\(e.type) active must correlate with itself")
            if e.eventClass != .state { open[e.eventID] = e.type }
        case .cleared:
            #expect(open[e.correlationID] == e.type, "\(e.type) cleared at \(e.occurredAt.rfc3339) without its active")
            open[e.correlationID] = nil
        case .update:
            if e.eventClass != .state { #expect(open[e.correlationID] == e.type, "\(e.type) update without an open active") }
        case .cancelled:
            Issue.record("the engine never cancels")
        }
    }
}

@Suite struct ReplayFixtureTests {
    @Test(arguments: [
        ("besto-alarm", "home"), ("besto-no-alarm", "home"), ("exit-near-window-end", "home"), ("vik-door-at-night", "home"),
        ("door-left-open", "home"), ("fall", "home"), ("button", "home"), ("not-up-by", "home"), ("inactivity", "home"),
        ("sensor-silent", "supervised"), ("battery-hysteresis", "supervised"), ("debounce-chatter", "home"),
        ("restart-mid-timer", "home"), ("dst-spring-2026", "home"), ("dst-autumn-2026", "home"),
    ])
    func fixtureGivesItsExpectedEvents(name: String, configName: String) throws {
        let (config, zone) = try fixtureConfig(configName)
        let text = String(decoding: try Files.read("\(scenarios)/\(name).jsonl"), as: UTF8.self)
        let steps = try Scenario.parse(text, sensors: config.sensors.map(\.id)).get().map(\.step)
        let events = try replay(config, zone, steps)
        let expected = try String(decoding: try Files.read("\(scenarios)/\(name).expected.jsonl"), as: UTF8.self)
            .split(separator: "\n").map { try JSONValue.parse(String($0)) }
        let actual = try events.map { e -> JSONValue in
            let full = try JSONValue.parse(Scenario.outputLine(e, zone: zone))
            return .object(full.objectFields!.filter { $0.0 != "eventId" && $0.0 != "correlationId" })
        }
        #expect(actual.count == expected.count, "\(name): \(actual.count) events, expected \(expected.count)")
        for (i, (a, x)) in zip(actual, expected).enumerated() where a != x {
            Issue.record("\(name) event \(i + 1):\n  got      \(a.serialized)\n  expected \(x.serialized)")
        }
        checkCorrelation(events)
    }

    @Test func restartMidTimerRaisesTheAlarmOnceAndClearsItUnderTheSameID() throws {
        let (config, zone) = try fixtureConfig("home")
        let text = String(decoding: try Files.read("\(scenarios)/restart-mid-timer.jsonl"), as: UTF8.self)
        let events = try replay(config, zone, try Scenario.parse(text, sensors: config.sensors.map(\.id)).get().map(\.step))
        let alarms = events.filter { $0.type == .bedNotReturned }
        #expect(alarms.map(\.state) == [.active, .cleared])
        #expect(alarms[0].occurredAt.rfc3339 == "2026-11-24T02:40:00.000+01:00")
        #expect(alarms[1].correlationID == alarms[0].eventID)
        // Raised in the second boot, cleared in the third: the boot ids say so.
        #expect(alarms[0].occurredAt.bootID == "replay-boot-1")
        #expect(alarms[1].occurredAt.bootID == "replay-boot-2")
    }
}
