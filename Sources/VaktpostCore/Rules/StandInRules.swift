/// Taking in the rules a stand-in ran while the outbox's open hung at start.
///
/// The stand-in's rules started afresh: they knew nothing of the timers saved in the outbox (out
/// of bed since 01:50, the alarm due at 02:20), and took each sensor's first reading as its
/// state, not as a change. The outbox's rule state, restored when the open returns, has those
/// timers but misses everything the stand-in heard. Keeping either alone loses something: the
/// stand-in's alone drops the timers; the outbox's alone drops a resident who left bed during the
/// hang (a bed sensor that reports only changes would not say so again until they are back), and
/// raises again the alarms the stand-in already raised, leaving those never cleared.
///
/// So, per sensor the stand-in heard:
/// - a channel whose change the stand-in confirmed is the stand-in's from then on, with the rules
///   on it (their open alarm and timer); an alarm the outbox had open on such a rule is cleared,
///   since the resident has since been seen back (or gone again, which the stand-in's timer covers);
/// - a channel the stand-in knew only by its first reading is that reading, fed to the outbox's
///   rules at the time it was heard, as if the outbox had heard it: the change it may be starts
///   its timer then, and a timer due before it fires, late, stamped when it fell due;
/// - the sensor was heard at its last time, with its last battery level and tamper;
/// - an alarm or condition both have open for one rule or sensor is the outbox's; the stand-in's
///   technical duplicate is cleared, its alarm left for the operator (an alarm is never cleared
///   on the hub's bookkeeping alone).
extension RuleEngine {
    public func takeIn(standIn theirs: EngineState, into state: inout EngineState, events: inout EventFactory) {
        guard let theirNow = theirs.now ?? theirs.startedAt else { return }
        let firstNew = events.events.count
        var replays: [Reading] = []
        var overlaid: Set<String> = []
        for id in sensorOrder {
            let sensor = sensors[id]!
            guard let heard = theirs.sensors[id], let lastHeard = heard.lastHeard else { continue }
            var mine = state.sensors[id] ?? SensorState()
            // Before any replay, so that an inactivity timer does not fire on an activity it saw.
            mine.lastActivity = [mine.lastActivity, heard.lastActivity].compactMap { $0 }.max()
            state.sensors[id] = mine
            for (channel, c) in heard.channels.sorted(by: { $0.key < $1.key }) {
                // Motion drives no rule's timer (inactivity counts from `lastActivity`, taken above).
                if c.stable != nil, !c.firstReading || channel == .motion {
                    state.sensors[id]!.channels[channel] = c
                    for rule in rules where rule.sensors.contains(id) && rule.kind.channel == channel {
                        let their = theirs.rules[rule.id] ?? RuleState()
                        if let active = state.rules[rule.id]?.active, active != their.active {
                            clear(rule, sensor: sensor, at: c.changedAt ?? lastHeard, state: &state, events: &events)
                        }
                        state.rules[rule.id, default: RuleState()].active = their.active
                        state.rules[rule.id, default: RuleState()].activeType = their.activeType
                        state.rules[rule.id, default: RuleState()].deadline = their.deadline
                        overlaid.insert(rule.id)
                    }
                } else {
                    if let value = c.stable, let at = c.changedAt { replays.append(reading(of: id, channel, value, at: at)) }
                    if let value = c.pending, let at = c.pendingSince { replays.append(reading(of: id, channel, value, at: at)) }
                }
            }
            replays.append(Reading(sensor: id, receivedAt: lastHeard, values: ReadingValues(battery: heard.battery, tamper: heard.tamper != nil ? true : nil)))
        }
        for r in replays.enumerated().sorted(by: { ($0.element.receivedAt, $0.offset) < ($1.element.receivedAt, $1.offset) }) {
            handle(r.element, state: &state, events: &events)
        }

        // One open alarm or condition per rule and sensor: raised here again what the stand-in
        // has open already is the stand-in's, with its id.
        let raisedHere = Set(events.events[firstNew...].filter { $0.state == .active }.map(\.eventID))
        var dropped: Set<EventID> = []
        for id in sensorOrder {
            guard let heard = theirs.sensors[id] else { continue }
            if let activity = heard.lastActivity { state.sensors[id, default: SensorState()].lastActivity = max(state.sensors[id]?.lastActivity ?? activity, activity) }
            if let their = heard.refusal { takeIn(their, of: sensors[id]!, at: theirNow, into: &state, events: &events) }
            for (condition, type) in [(\SensorState.silent, EventType.sensorSilent), (\.batteryLow, .sensorBatteryLow), (\.tamper, .sensorTamper)] {
                guard let their = heard[keyPath: condition], state.sensors[id]?[keyPath: condition] != their else { continue }
                if let mine = state.sensors[id]?[keyPath: condition], !raisedHere.contains(mine) {
                    events.emit(type, .cleared, at: theirNow, sensor: sensors[id], rule: nil, correlation: their,
                                data: [("duplicateOf", .string(mine.description))])
                    continue
                }
                if let mine = state.sensors[id]?[keyPath: condition] { dropped.insert(mine) }
                state.sensors[id, default: SensorState()][keyPath: condition] = their
            }
        }
        for rule in rules where !overlaid.contains(rule.id) {
            guard let their = theirs.rules[rule.id], let active = their.active, state.rules[rule.id]?.active != active else { continue }
            if let mine = state.rules[rule.id]?.active {
                guard raisedHere.contains(mine) else { continue }
                dropped.insert(mine)
            }
            state.rules[rule.id, default: RuleState()].active = active
            state.rules[rule.id, default: RuleState()].activeType = their.activeType
        }
        events.drop(dropped)
    }

    /// The stand-in's run of refused packets, joined with the outbox's: one `sensor.refused`
    /// (the outbox's, if both raised one: the stand-in's is cleared as its duplicate), the
    /// packets of both counted, waiting only if neither was raised.
    func takeIn(_ their: RefusedRun, of sensor: SensorConfig, at theirNow: WallTime, into state: inout EngineState, events: inout EventFactory) {
        guard let mine = state.sensors[sensor.id]?.refusal else {
            state.sensors[sensor.id, default: SensorState()].refusal = their
            return
        }
        if let theirs = their.event, let kept = mine.event, theirs != kept {
            events.emit(.sensorRefused, .cleared, at: theirNow, sensor: sensor, rule: nil, correlation: theirs, data: [("duplicateOf", .string(kept.description))])
        }
        let latest = their.last > mine.last ? their : mine
        let event = mine.event ?? their.event
        state.sensors[sensor.id]!.refusal = RefusedRun(
            event: event, pendingSince: event != nil ? nil : [mine.pendingSince, their.pendingSince].compactMap { $0 }.min(),
            reason: latest.reason, last: latest.last, packets: mine.packets + their.packets)
    }

    func reading(of sensor: SensorID, _ channel: Channel, _ value: Bool, at time: WallTime) -> Reading {
        var values = ReadingValues()
        switch channel {
        case .occupied: values.occupied = value
        case .open: values.open = value
        case .motion: values.motion = value
        }
        return Reading(sensor: sensor, receivedAt: time, values: values)
    }
}

extension RuleKind {
    /// The channel whose confirmed changes drive this rule's alarm and timer, if one does.
    var channel: Channel? {
        switch self {
        case .notBackInBed, .notUpBy: return .occupied
        case .doorAtNight, .doorLeftOpen: return .open
        case .fall, .button, .inactivity: return nil
        }
    }
}
