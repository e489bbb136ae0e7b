import VaktpostCore

/// `vaktpost replay`: the rule engine on simulated time, fed from a scenario file.
/// Used by technicians to see what a configuration would have done, and by the tests.
public struct Replay {
    public let engine: RuleEngine
    public let store: RuleStateStore
    public let seed: UInt64

    public init(config: Config, zone: TimeZoneRules, stateFile: String, seed: UInt64 = 0) {
        engine = RuleEngine(config: config, zone: zone)
        store = RuleStateStore(path: stateFile)
        self.seed = seed
    }

    /// Runs the steps in order and hands each event to `output` as it is produced.
    public func run(_ steps: [ScenarioStep], output: (Event) -> Void) throws(RuleStateError) {
        guard let first = steps.first?.time else { return }
        var boot = 0
        var state = EngineState()
        let zone = engine.zone
        // Simulated boots: boot time counts from each (re)start, and each boot has its own id.
        func factory(_ bootStart: WallTime, _ rng: any RandomNumberGenerator) -> EventFactory {
            let bootID = "replay-boot-\(boot)"
            return EventFactory(rng: rng) { wall in
                EventTime(wall: wall, utcOffsetSeconds: zone.utcOffset(at: wall),
                          boottimeNanoseconds: UInt64(max(0, (wall - bootStart).nanoseconds)), bootID: bootID, clockSynced: true)
            }
        }
        var events = factory(first, SplitMix64(seed: seed))
        for step in steps {
            switch step {
            case .reading(let reading):
                engine.handle(reading, state: &state, events: &events)
            case .restart(let at):
                engine.advance(&state, to: at, events: &events)
                events.take().forEach(output)
                try store.save(state)
                state = try store.load()
                boot += 1
                events = factory(at, events.rng)
            case .end(let at):
                engine.advance(&state, to: at, events: &events)
            }
            events.take().forEach(output)
        }
    }
}
