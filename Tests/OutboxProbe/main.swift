#if canImport(Glibc)
import Glibc
#endif
import Outbox
import VaktpostCore
import VaktpostPosix
import Synchronization

// outbox-probe: drives the outbox from its own process.
//   outbox-probe crash-writer DB SEED    stores and acknowledges events forever, printing
//                                        "stored SEQ ID" / "acked ID" after each call returns
//                                        and "settling ID,ID,..." before acknowledging;
//                                        the crash test SIGKILLs it at random moments.
//   outbox-probe ingest DB EVENTS BATCH [PAUSE_US]  stores EVENTS events in appends of BATCH
//                                        (PAUSE_US apart) with the daemon's checkpointer beside,
//                                        and prints "events=N batch=B seconds=S events_per_second=R".
//   outbox-probe backlog DB EVENTS ALARMS  an outage's backlog: EVENTS state events with ALARMS
//                                        alarms spread among them, for the drain benchmark.
//   outbox-probe full DB MAX_MIB APPENDS  an outage past the outbox's capacity (MAX_MIB): fills it
//                                        with technical and state events of 10 sensors until what
//                                        may not be evicted exceeds it, then times APPENDS appends
//                                        of one event each (every tenth an alarm) and prints
//                                        "appends=N median_ms=M p99_ms=P max_ms=X alarm_median_ms=A
//                                        depth=D".
//   outbox-probe restamp DB EVENTS [ALARM_EVERY]  the clock correction over EVENTS events stamped
//                                        before sync (one in ALARM_EVERY in the alarm lane),
//                                        step by step as the agent runs it, an alarm appended from
//                                        another thread meanwhile; prints "rewritten=N seconds=S
//                                        longest_step=S alarm_wait=S maxrss_kib=K".

func say(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }  // unbuffered: a kill loses nothing printed
}

func wallNow() -> WallTime {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return WallTime(secondsSinceEpoch: Int64(ts.tv_sec), nanoseconds: Int64(ts.tv_nsec))
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

// One thread touches rng: the ingest's checkpointer thread only checkpoints.
nonisolated(unsafe) var rng = SplitMix64(seed: 1)

func event(_ type: EventType, _ state: EventState = .active, sensor: String? = "bed", correlation: EventID? = nil, data: [(String, JSONValue)] = []) -> Event {
    let t = wallNow()
    let id = EventID.v7(unixMilliseconds: t.millisecondsSinceEpoch, using: &rng)
    let kind = EventCatalog.kind(of: type)!
    return Event(
        eventID: id, eventClass: kind.eventClass, type: type, state: state, correlationID: correlation ?? id, priority: kind.priority,
        sensor: sensor.flatMap(SensorID.init), room: .bedroom, rule: nil,
        occurredAt: EventTime(wall: t, utcOffsetSeconds: 3600, boottimeNanoseconds: 1, bootID: "probe", clockSynced: true),
        codes: EventCatalog.codes(for: type, state: state, role: .bed, room: .bedroom), data: data)
}

func open(_ path: String, limits: OutboxLimits = OutboxLimits()) -> Outbox {
    do {
        return try Outbox(path: path, limits: limits, now: wallNow) { type, state, correlation, data in event(type, state, sensor: nil, correlation: correlation, data: data) }
    } catch {
        say("error \(error)")
        exit(2)
    }
}

/// Stores events, or says why and exits 3: a measurement whose outbox fails measures nothing.
func appendOrExit(_ events: [Event], to outbox: Outbox) {
    do { try outbox.append(events) } catch {
        say("error \(error)")
        exit(3)
    }
}

let args = CommandLine.arguments
guard args.count >= 3 else {
    say("usage: outbox-probe crash-writer DB SEED | ingest DB EVENTS BATCH | backlog DB EVENTS ALARMS | full DB MAX_MIB APPENDS | restamp DB EVENTS")
    exit(64)
}

switch args[1] {
case "crash-writer":
    rng = SplitMix64(seed: UInt64(args.count > 3 ? Int(args[3]) ?? 1 : 1) &+ UInt64(getpid()))
    let outbox = open(args[2])
    var round = 0
    while true {
        round += 1
        let count = Int.random(in: 1...8, using: &rng)
        let events = (0..<count).map { i in
            i % 3 == 0 ? event(.bedNotReturned) : (i % 3 == 1 ? event(.bedState, .update) : event(.sensorBatteryLow))
        }
        do {
            let seqs = try outbox.append(events)
            for (e, seq) in zip(events, seqs) { say("stored \(seq) \(e.eventID)") }
            // Every fourth round a delivery: every eighth the alarm lane's (the alarm alone, no
            // batch stored), else a bulk batch.
            let next = round % 4 != 0 ? nil : round % 8 == 0 ? try outbox.queuedAlarms(skipping: [], limit: 1).first.map(OutboxBatch.alarm)
                : try outbox.nextBatch(maxCount: 5, maxBytes: 1 << 20, body: { _, _ in [1] })
            if let batch = next {
                say("settling " + batch.events.map(\.eventID.description).joined(separator: ","))
                try outbox.settle(batch, outcomes: Dictionary(uniqueKeysWithValues: batch.events.map { ($0.eventID, DeliveryOutcome.delivered) }))
                for e in batch.events { say("acked \(e.eventID)") }
            }
        } catch {
            say("error \(error)")
            exit(3)
        }
    }
case "ingest":
    guard args.count == 5 || args.count == 6, let total = Int(args[3]), let batchSize = Int(args[4]), batchSize > 0 else {
        say("usage: outbox-probe ingest DB EVENTS BATCH [PAUSE_US]")
        exit(64)
    }
    // A pause between appends paces them like the daemon's commits (a tight loop never pauses).
    let pause = args.count == 6 ? UInt32(args[5]) ?? 0 : 0
    let outbox = open(args[2])
    // The daemon's checkpointer, the same code on its own connection and thread, woken by the
    // commit that grows the WAL past 1 MB. `strace -ff` tells its fsyncs from the appends'.
    let path = args[2]
    let loop = BackgroundLoop(label: "vaktpost.outbox.checkpoint")
    outbox.onWALGrowth { loop.wake() }
    let activity = outbox.walActivity
    loop.start {
        let checkpointer = try! OutboxCheckpointer(path: path)
        checkpointer.run(on: loop, activity: activity) { say($0) }
    }
    let batches = (0..<(total / batchSize)).map { b in
        (0..<batchSize).map { i in (b * batchSize + i) % 10 == 0 ? event(.bedNotReturned) : event(.bedState, .update, data: [("occupied", .bool(i % 2 == 0))]) }
    }
    let start = monotonicSeconds()
    for b in batches {
        if pause > 0 { usleep(pause) }
        appendOrExit(b, to: outbox)
    }
    let seconds = monotonicSeconds() - start
    loop.stop()
    let stored = batches.count * batchSize
    say("events=\(stored) batch=\(batchSize) appends=\(batches.count) seconds=\(seconds) events_per_second=\(Int(Double(stored) / seconds))")
case "backlog":
    guard args.count == 5, let total = Int(args[3]), let alarms = Int(args[4]), alarms >= 0 else {
        say("usage: outbox-probe backlog DB EVENTS ALARMS")
        exit(64)
    }
    let outbox = open(args[2], limits: OutboxLimits(maxBytes: 1 << 30, maxRows: 2_000_000))
    let every = alarms > 0 ? max(1, total / alarms) : Int.max
    var stored = 0
    while stored < total {
        let chunk = (stored..<min(total, stored + 1000)).map { i in
            i % every == every - 1 ? event(.fallDetected, sensor: "fall") : event(.bedState, .update, data: [("occupied", .bool(i % 2 == 0))])
        }
        appendOrExit(chunk, to: outbox)
        stored += chunk.count
    }
    try? outbox.checkpoint()
    try? outbox.close()
    say("events=\(stored)")
case "full":
    guard args.count == 5, let mib = Int64(args[3]), let appends = Int(args[4]), mib > 0, appends > 0 else {
        say("usage: outbox-probe full DB MAX_MIB APPENDS")
        exit(64)
    }
    let outbox = open(args[2], limits: OutboxLimits(maxBytes: mib << 20, maxRows: 2_000_000))
    // Half of it technical events (a sensor that keeps going silent and coming back): those
    // the capacity policy may not evict, so they end up filling the outbox past its limit.
    func reading(_ i: Int) -> Event {
        i % 2 == 0 ? event(.sensorSilent, sensor: "bed\(i % 10)", data: [("n", .int(Int64(i)))])
            : event(.bedState, .update, sensor: "bed\(i % 10)", data: [("occupied", .bool(i % 4 == 1)), ("n", .int(Int64(i)))])
    }
    var i = 0
    while (try? outbox.status().lanes.values.reduce(Int64(0)) { $0 + $1.bytes }) ?? 0 <= mib << 20 {
        appendOrExit((0..<1000).map { k in reading(i + k) }, to: outbox)
        i += 1000
    }
    var all: [Double] = [], alarms: [Double] = []
    for k in 0..<appends {
        let e = k % 10 == 9 ? event(.fallDetected, sensor: "fall") : reading(i + k)
        let began = monotonicSeconds()
        appendOrExit([e], to: outbox)
        let ms = (monotonicSeconds() - began) * 1000
        all.append(ms)
        if k % 10 == 9 { alarms.append(ms) }
    }
    all.sort()
    alarms.sort()
    let depth = (try? outbox.summary().depth) ?? -1
    say("appends=\(appends) median_ms=\(all[all.count / 2]) p99_ms=\(all[min(all.count - 1, all.count * 99 / 100)]) max_ms=\(all.last!) alarm_median_ms=\(alarms.isEmpty ? 0 : alarms[alarms.count / 2]) depth=\(depth)")
case "restamp":
    guard args.count == 4 || args.count == 5, let total = Int(args[3]), total > 0 else {
        say("usage: outbox-probe restamp DB EVENTS [ALARM_EVERY]")
        exit(64)
    }
    let outbox = open(args[2], limits: OutboxLimits(maxBytes: 1 << 30, maxRows: 2_000_000))
    // Stamped as an agent does before NTP: unsynchronised, with the boot time to correct from.
    func unsynced(_ e: Event) -> Event {
        var e = e
        e.occurredAt = EventTime(wall: e.occurredAt.wall, utcOffsetSeconds: 0, boottimeNanoseconds: 5_000_000_000, bootID: "probe", clockSynced: false)
        return e
    }
    // One event in ALARM_EVERY is in the alarm lane (default 100; 2 is an outbox full of technical events).
    let alarmEvery = args.count == 5 ? max(1, Int(args[4]) ?? 100) : 100
    var stored = 0
    while stored < total {
        let chunk = (stored..<min(total, stored + 1000)).map { i in
            unsynced(i % alarmEvery == 0 ? event(.fallDetected, sensor: "fall") : event(.bedState, .update, data: [("occupied", .bool(i % 2 == 0))]))
        }
        appendOrExit(chunk, to: outbox)
        stored += chunk.count
    }
    try? outbox.checkpoint()
    // The agent's one lock around the outbox (LockedOutbox), here for the two threads.
    final class Shared: @unchecked Sendable {
        let lock = Mutex(())
        let outbox: Outbox
        init(_ outbox: Outbox) { self.outbox = outbox }
        func with<T>(_ body: (Outbox) throws -> T) throws -> T { try lock.withLock { _ in try body(outbox) } }
    }
    let shared = Shared(outbox)
    let raiser = BackgroundLoop(label: "vaktpost.probe.alarm")
    let start = monotonicSeconds()
    raiser.start {
        usleep(20_000)  // once the pass is under way
        let raised = monotonicSeconds()
        do { try shared.with { _ = try $0.append([event(.fallDetected, sensor: "fall")]) } } catch {
            say("error \(error)")
            exit(3)
        }
        say("alarm_wait=\(monotonicSeconds() - raised)")
    }
    var rewritten = 0, longest = 0.0
    var cursor: RewriteCursor? = .start
    while let at = cursor {
        let began = monotonicSeconds()
        do {
            let step = try shared.with { o in
                try o.rewriteQueued(containing: TimeCorrection.unsyncedMark, from: at) {
                    TimeCorrection.correct($0.payload, bootID: "probe", offsetNanoseconds: 1_700_000_000_000_000_000, zone: .utc)
                }
            }
            rewritten += step.rewritten
            cursor = step.next
        } catch {
            say("error \(error)")
            exit(3)
        }
        longest = max(longest, monotonicSeconds() - began)
    }
    let seconds = monotonicSeconds() - start
    raiser.stop()
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    say("rewritten=\(rewritten) seconds=\(seconds) longest_step=\(longest) maxrss_kib=\(usage.ru_maxrss)")
default:
    say("unknown mode \(args[1])")
    exit(64)
}
