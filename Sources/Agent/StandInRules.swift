import Logging
import Outbox
import Synchronization
import VaktpostCore

extension HubDaemon {
    /// At start: the rules a stand-in ran afresh while the outbox's open hung, left in the outbox
    /// when it was taken in (`Outbox.standInRulesNote`), join the timers saved in the outbox
    /// (`RuleEngine.takeIn`): what they heard (a resident who left bed meanwhile) and the alarms
    /// they raised. Committed at once, with the alarms the outbox's timers owe meanwhile.
    func takeInStandInRules() {
        guard let text = ((try? outbox.with { try $0.note(Outbox.standInRulesNote) }) ?? nil) else { return }
        let theirs: EngineState
        do {
            theirs = try EngineState(json: JSONValue.parse(text))
        } catch {
            logger.error("the rule state the stand-in ran cannot be read (\(error)): the rules go on from the outbox's alone, so a change the stand-in saw (a resident out of bed) counts from that sensor's next reading; check on the resident")
            try? outbox.with { try $0.setNote(Outbox.standInRulesNote, nil) }
            return
        }
        let made = core.withLock { [engine] c in
            let before = c.factory.events.count
            engine.takeIn(standIn: theirs, into: &c.state, events: &c.factory)
            let made = c.factory.events.count - before
            // Stored before the note goes: a state changed without events (an alarm id the
            // stand-in raised, adopted) would otherwise wait for the next event to be saved.
            commitAll(&c)
            return made
        }
        try? outbox.with { try $0.setNote(Outbox.standInRulesNote, nil) }
        logger.notice("the rules took in what the stand-in's rules heard while the outbox's open hung, and the alarms they raised: \(made) events")
    }
}
