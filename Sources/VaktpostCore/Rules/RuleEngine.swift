/// The supervision rules as a pure state machine: `(state, reading or time) -> (state, events)`.
///
/// Nothing here reads a clock or a file. The caller feeds readings in time order and advances
/// the engine to "now" (or to `nextDeadline`); timers fire at exactly their due time, so an
/// alarm that falls due while the agent was restarting is raised once, stamped when it fell due.
///
/// Semantics (issue #3):
/// - A reading changes a sensor's state only when the new state holds for the sensor's
///   `debounce`; a shorter blip is as if it never happened, and timers count from the first
///   reading of the state that held. A sensor's first reading sets its state without a change.
/// - Windows are local time, half-open, may cross midnight; durations are elapsed time.
/// - Fall and button readings are momentary and always count; battery and tamper are levels.
public struct RuleEngine: Sendable {
    public let zone: TimeZoneRules
    let sensors: [SensorID: SensorConfig]
    let sensorOrder: [SensorID]
    let rules: [RuleConfig]

    public init(sensors: [SensorConfig], rules: [RuleConfig], zone: TimeZoneRules) {
        self.zone = zone
        self.sensors = Dictionary(uniqueKeysWithValues: sensors.map { ($0.id, $0) })
        self.sensorOrder = sensors.map(\.id)
        self.rules = rules
    }

    public init(config: Config, zone: TimeZoneRules) {
        self.init(sensors: config.sensors, rules: config.rules, zone: zone)
    }

    // MARK: Driving the engine

    /// Feeds one reading: first runs every timer due up to its time, then applies it.
    public func handle(_ reading: Reading, state: inout EngineState, events: inout EventFactory) {
        advance(&state, to: reading.receivedAt, events: &events)
        guard let sensor = sensors[reading.sensor] else { return }
        apply(reading, from: sensor, to: &state, events: &events)
    }

    /// Runs every timer due at or before `time`, in time order, and moves the engine's clock there.
    public func advance(_ state: inout EngineState, to time: WallTime, events: inout EventFactory) {
        start(&state, at: time)
        while let (due, action) = nextDue(state), due <= time {
            state.now = max(state.now ?? due, due)
            perform(action, at: due, state: &state, events: &events)
        }
        state.now = max(state.now ?? time, time)
    }

    /// When the engine next needs to run even if no reading arrives.
    public func nextDeadline(_ state: EngineState) -> WallTime? {
        nextDue(state)?.0
    }

    /// The rule whose open alarm is `alarm`: what an alarm remade after its stored bytes were
    /// damaged (`EventFactory.remade`) still knows of itself.
    public func rule(withOpenAlarm alarm: EventID, in state: EngineState) -> RuleConfig? {
        rules.first { state.rules[$0.id]?.active == alarm }
    }

    /// A packet of `sensor` refused at `time` for a reason its repeats never have (a wrong key,
    /// a counter that went back: `BTHomeRejection.saysTheSensorIsNotHeard`). The sensor is
    /// sending but not heard, so a press raises nothing; `sensor.silent` would say so only after
    /// its supervision time, and not why, and a fall button is heard only when pressed.
    ///
    /// So `sensor.refused` means "sending, and not heard":
    /// - raised at the first refused packet, unless a packet was taken less than `refusalQuiet`
    ///   before it. Then it is raised `refusalQuiet` after that refusal if no packet is taken
    ///   meanwhile: a button pressed, its battery changed, and pressed again is raised a minute
    ///   later; a sensor whose packets are taken among refused ones (a second kind of packet the
    ///   agent cannot read, someone replaying old packets beside the real ones) is heard, and
    ///   raises nothing;
    /// - cleared once a packet is taken and none has been refused for `refusalQuiet`, so that
    ///   it is not raised and cleared at every packet.
    public func refused(_ id: SensorID, reason: String, at time: WallTime, state: inout EngineState, events: inout EventFactory) {
        advance(&state, to: time, events: &events)
        guard let sensor = sensors[id] else { return }
        var s = state.sensors[id] ?? SensorState()
        if var r = s.refusal {
            r.last = time
            r.packets += 1
            r.reason = reason
            s.refusal = r
        } else if let heard = s.lastHeard, time - heard < Self.refusalQuiet, time >= heard {
            s.refusal = RefusedRun(event: nil, pendingSince: time, reason: reason, last: time, packets: 1)
        } else {
            let event = events.emit(.sensorRefused, .active, at: time, sensor: sensor, rule: nil, data: [("reason", .string(reason))])
            s.refusal = RefusedRun(event: event, pendingSince: nil, reason: reason, last: time, packets: 1)
        }
        state.sensors[id] = s
    }

    /// How long refused packets wait for a taken one before they are raised, when a packet was
    /// taken just before them; and how long after the last refused packet a taken one clears.
    public static let refusalQuiet: Duration = .seconds(60)

    /// First run: remember the start, and schedule the daily checks from it.
    func start(_ state: inout EngineState, at time: WallTime) {
        guard state.startedAt == nil else { return }
        state.startedAt = time
        state.now = time
        for rule in rules where rule.kind == .notUpBy {
            state.rules[rule.id, default: RuleState()].nextCheck = rule.at!.next(after: time, in: zone)
        }
    }

    // MARK: What is due

    enum Due {
        case confirm(SensorID, Channel)
        case ruleTimer(Int)
        case dailyCheck(Int)
        case inactivity(Int)
        case silent(SensorID)
        case refusalOver(SensorID)
        case refusalDue(SensorID)

        /// At one instant: confirm state first, then rules, then supervision.
        var order: Int {
            switch self {
            case .confirm: return 0
            case .ruleTimer, .dailyCheck, .inactivity: return 1
            case .silent, .refusalOver, .refusalDue: return 2
            }
        }
    }

    func nextDue(_ state: EngineState) -> (WallTime, Due)? {
        var best: (WallTime, Due)? = nil
        func offer(_ t: WallTime?, _ d: Due) {
            guard let t else { return }
            if let b = best, (b.0, b.1.order) <= (t, d.order) { return }
            best = (t, d)
        }
        for id in sensorOrder {
            let config = sensors[id]!
            let s = state.sensors[id] ?? SensorState()
            for channel in Channel.allCases {
                if let c = s.channels[channel], c.pending != nil, let since = c.pendingSince {
                    offer(since + config.debounce, .confirm(id, channel))
                }
            }
            if let supervision = config.supervision, s.silent == nil, let heard = s.lastHeard ?? state.startedAt {
                offer(heard + supervision, .silent(id))
            }
            if let r = s.refusal {
                if let since = r.pendingSince {
                    offer(since + Self.refusalQuiet, .refusalDue(id))
                } else if let heard = s.lastHeard, heard >= r.last {
                    offer(r.last + Self.refusalQuiet, .refusalOver(id))
                }
            }
        }
        for (index, rule) in rules.enumerated() {
            let r = state.rules[rule.id] ?? RuleState()
            switch rule.kind {
            case .notBackInBed, .doorLeftOpen: offer(r.deadline, .ruleTimer(index))
            case .notUpBy: offer(r.nextCheck, .dailyCheck(index))
            case .inactivity where r.active == nil: offer(inactivityDeadline(rule, state), .inactivity(index))
            default: break
            }
        }
        return best
    }

    /// When `inactivity` falls due: `after` past the latest activity of its sensors, or past the
    /// window's opening if that is later, provided that moment is inside the same occurrence.
    /// Never counted from before the engine first started: it cannot know what happened then.
    func inactivityDeadline(_ rule: RuleConfig, _ state: EngineState) -> WallTime? {
        guard let window = rule.window, let after = rule.after, let now = state.now, let started = state.startedAt else { return nil }
        let lastActivity = max(rule.sensors.compactMap { state.sensors[$0]?.lastActivity }.max() ?? started, started)
        var occurrence = window.currentOrNextOccurrence(at: now, in: zone)
        for _ in 0..<3 {
            let reference = max(lastActivity, occurrence.start)
            let due = reference + after
            if due < occurrence.end { return due }
            occurrence = window.nextOccurrence(after: occurrence.start, in: zone)
        }
        return nil
    }

    func perform(_ due: Due, at time: WallTime, state: inout EngineState, events: inout EventFactory) {
        switch due {
        case .confirm(let id, let channel):
            confirm(channel, of: sensors[id]!, at: time, state: &state, events: &events)
        case .silent(let id):
            let config = sensors[id]!
            let heard = state.sensors[id]?.lastHeard
            state.sensors[id, default: SensorState()].silent = events.emit(
                .sensorSilent, .active, at: time, sensor: config, rule: nil,
                data: [("silentFor", .string(DurationText.format(config.supervision!)))]
                    + (heard.map { [("lastHeardAt", .string(zone.format($0)))] } ?? []))
        case .refusalOver(let id):
            clearRefusal(of: sensors[id]!, at: time, state: &state, events: &events)
        case .refusalDue(let id):
            // Nothing taken since the first refusal: a taken packet would have ended the wait.
            guard var r = state.sensors[id]?.refusal, r.pendingSince != nil else { return }
            r.pendingSince = nil
            r.event = events.emit(.sensorRefused, .active, at: time, sensor: sensors[id]!, rule: nil,
                                  data: [("reason", .string(r.reason)), ("refusedPackets", .int(Int64(r.packets)))])
            state.sensors[id]!.refusal = r
        case .ruleTimer(let index):
            let rule = rules[index]
            state.rules[rule.id, default: RuleState()].deadline = nil
            let sensor = sensors[rule.sensors[0]]!
            let channel: Channel = rule.kind == .notBackInBed ? .occupied : .open
            let stillAway = rule.kind == .notBackInBed ? false : true  // vacant bed / open door
            let c = state.sensors[sensor.id]?.channels[channel]
            guard c?.stable == stillAway, state.rules[rule.id]?.active == nil, let since = c?.changedAt else { return }
            let type: EventType = rule.kind == .notBackInBed ? .bedNotReturned : .doorLeftOpen
            let key = rule.kind == .notBackInBed ? "leftBedAt" : "openedAt"
            raise(type, rule: rule, sensor: sensor, at: time, state: &state, events: &events, data: [
                (key, .string(zone.format(since))),
                ("minutes", .int(Int64((time - since).components.seconds / 60))),
            ])
        case .dailyCheck(let index):
            let rule = rules[index]
            state.rules[rule.id, default: RuleState()].nextCheck = rule.at!.next(after: time, in: zone)
            let sensor = sensors[rule.sensors[0]]!
            if state.sensors[sensor.id]?.channels[.occupied]?.stable == true, state.rules[rule.id]?.active == nil {
                raise(.bedNotUp, rule: rule, sensor: sensor, at: time, state: &state, events: &events, data: [("at", .string(rule.at!.description))])
            }
        case .inactivity(let index):
            let rule = rules[index]
            let last = rule.sensors.compactMap { state.sensors[$0]?.lastActivity }.max()
            raise(.activityNone, rule: rule, sensor: nil, at: time, state: &state, events: &events, data: [
                ("sensors", .array(rule.sensors.map { .string($0.rawValue) })),
                ("lastActivityAt", last.map { .string(zone.format($0)) } ?? .null),
            ])
        }
    }

    // MARK: Readings

    /// Ends the sensor's run of refused packets: a packet was taken (and, if it was raised, none
    /// has been refused for `refusalQuiet`).
    func clearRefusal(of sensor: SensorConfig, at time: WallTime, state: inout EngineState, events: inout EventFactory) {
        guard let r = state.sensors[sensor.id]?.refusal else { return }
        state.sensors[sensor.id]!.refusal = nil
        if let open = r.event {
            events.emit(.sensorRefused, .cleared, at: time, sensor: sensor, rule: nil, correlation: open, data: [("refusedPackets", .int(Int64(r.packets)))])
        }
    }

    func apply(_ reading: Reading, from sensor: SensorConfig, to state: inout EngineState, events: inout EventFactory) {
        let t = reading.receivedAt
        let v = reading.values
        var s = state.sensors[sensor.id] ?? SensorState()
        s.lastHeard = t
        if let silent = s.silent {
            s.silent = nil
            events.emit(.sensorSilent, .cleared, at: t, sensor: sensor, rule: nil, correlation: silent)
        }
        state.sensors[sensor.id] = s
        if let r = s.refusal, r.event == nil || t - r.last >= Self.refusalQuiet {
            clearRefusal(of: sensor, at: t, state: &state, events: &events)
            s = state.sensors[sensor.id]!
        }
        if let battery = v.battery {
            s.battery = battery
            if battery < sensor.batteryLow, s.batteryLow == nil {
                s.batteryLow = events.emit(.sensorBatteryLow, .active, at: t, sensor: sensor, rule: nil, data: [("battery", .int(Int64(battery)))])
            } else if let active = s.batteryLow, battery >= sensor.batteryLow + 5 {
                // Clears 5 points above the threshold, so a level hovering at it does not flap.
                s.batteryLow = nil
                events.emit(.sensorBatteryLow, .cleared, at: t, sensor: sensor, rule: nil, correlation: active, data: [("battery", .int(Int64(battery)))])
            }
        }
        if let tamper = v.tamper {
            if tamper, s.tamper == nil {
                s.tamper = events.emit(.sensorTamper, .active, at: t, sensor: sensor, rule: nil)
            } else if !tamper, let active = s.tamper {
                s.tamper = nil
                events.emit(.sensorTamper, .cleared, at: t, sensor: sensor, rule: nil, correlation: active)
            }
        }
        if v.fall == true || v.pressed == true || v.motion == true { s.lastActivity = t }
        state.sensors[sensor.id] = s

        var confirmNow: [Channel] = []
        for channel in Channel.allCases {
            guard let value = channel.value(in: v) else { continue }
            var c = state.sensors[sensor.id]!.channels[channel] ?? ChannelState()
            if c.stable == nil {
                c.stable = value
                c.changedAt = t
                c.firstReading = true
            } else if value == c.stable {
                c.pending = nil  // a blip shorter than the debounce: as if it never happened
                c.pendingSince = nil
            } else if c.pending != value {
                c.pending = value
                c.pendingSince = t
                if sensor.debounce == .zero { confirmNow.append(channel) }
            }
            state.sensors[sensor.id]!.channels[channel] = c
        }
        for channel in confirmNow { confirm(channel, of: sensor, at: t, state: &state, events: &events) }
        if v.motion == true { clearInactivity(watching: sensor.id, at: t, state: &state, events: &events) }

        for rule in rules where rule.sensors.contains(sensor.id) {
            switch rule.kind {
            case .fall:
                guard let fall = v.fall else { continue }
                let active = state.rules[rule.id]?.active
                if fall {
                    if let active {
                        // A second fall while the first is open: news for the operator, not a new alarm.
                        events.emit(.fallDetected, .update, at: t, sensor: sensor, rule: rule, correlation: active)
                    } else {
                        raise(.fallDetected, rule: rule, sensor: sensor, at: t, state: &state, events: &events)
                    }
                } else {
                    clear(rule, sensor: sensor, at: t, state: &state, events: &events)
                }
            case .button where v.pressed == true:
                // Every press is an alarm of its own: pressing again may mean it is urgent.
                events.emit(.buttonPressed, .active, at: t, sensor: sensor, rule: rule)
            default:
                break
            }
        }
        if v.fall == true || v.pressed == true { clearInactivity(watching: sensor.id, at: t, state: &state, events: &events) }
    }

    /// A pending state has held long enough: it becomes the sensor's state as of its first reading.
    func confirm(_ channel: Channel, of sensor: SensorConfig, at now: WallTime, state: inout EngineState, events: inout EventFactory) {
        var c = state.sensors[sensor.id]!.channels[channel]!
        guard let value = c.pending, let since = c.pendingSince else { return }
        c.stable = value
        c.changedAt = since
        c.pending = nil
        c.pendingSince = nil
        c.firstReading = false
        state.sensors[sensor.id]!.channels[channel] = c
        state.sensors[sensor.id]!.lastActivity = max(state.sensors[sensor.id]!.lastActivity ?? since, since)
        events.emit(channel.stateEvent, .update, at: now, sensor: sensor, rule: nil, status: channel.scaipStatus(value),
                    data: [(channel.rawValue, .bool(value)), ("changedAt", .string(zone.format(since)))])
        clearInactivity(watching: sensor.id, at: now, state: &state, events: &events)

        for rule in rules where rule.sensors.contains(sensor.id) {
            switch (rule.kind, channel) {
            case (.notBackInBed, .occupied):
                if value {
                    state.rules[rule.id, default: RuleState()].deadline = nil
                    clear(rule, sensor: sensor, at: now, state: &state, events: &events)
                } else if let occurrence = rule.window!.occurrence(containing: since, in: zone), since + rule.after! < occurrence.end {
                    // Armed only by a vacancy that began inside the window, and only if the alarm
                    // would still fall inside the same night: leaving bed at 06:45 never alarms at 07:15.
                    state.rules[rule.id, default: RuleState()].deadline = since + rule.after!
                }
            case (.notUpBy, .occupied) where !value:
                clear(rule, sensor: sensor, at: now, state: &state, events: &events)
            case (.doorAtNight, .open):
                if value, rule.window!.occurrence(containing: since, in: zone) != nil, state.rules[rule.id]?.active == nil {
                    raise(.doorOpenedAtNight, rule: rule, sensor: sensor, at: now, state: &state, events: &events,
                          data: [("openedAt", .string(zone.format(since)))])
                } else if !value {
                    clear(rule, sensor: sensor, at: now, state: &state, events: &events)
                }
            case (.doorLeftOpen, .open):
                state.rules[rule.id, default: RuleState()].deadline = value ? since + rule.after! : nil
                if !value { clear(rule, sensor: sensor, at: now, state: &state, events: &events) }
            default:
                break
            }
        }
    }

    func clearInactivity(watching sensor: SensorID, at now: WallTime, state: inout EngineState, events: inout EventFactory) {
        // The alarm names no single sensor (it is about all of them), so neither does its clearing.
        for rule in rules where rule.kind == .inactivity && rule.sensors.contains(sensor) {
            clear(rule, sensor: nil, at: now, state: &state, events: &events)
        }
    }

    func raise(_ type: EventType, rule: RuleConfig, sensor: SensorConfig?, at t: WallTime, state: inout EngineState, events: inout EventFactory, data: [(String, JSONValue)] = []) {
        let id = events.emit(type, .active, at: t, sensor: sensor, rule: rule, data: data)
        state.rules[rule.id, default: RuleState()].active = id
        state.rules[rule.id, default: RuleState()].activeType = type.rawValue
    }

    func clear(_ rule: RuleConfig, sensor: SensorConfig?, at t: WallTime, state: inout EngineState, events: inout EventFactory) {
        guard let active = state.rules[rule.id]?.active, let type = state.rules[rule.id]?.activeType else { return }
        state.rules[rule.id]!.active = nil
        state.rules[rule.id]!.activeType = nil
        events.emit(EventType(type), .cleared, at: t, sensor: sensor, rule: rule, correlation: active)
    }
}
