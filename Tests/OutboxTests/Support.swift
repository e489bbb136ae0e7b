import Foundation
@testable import Outbox
import VaktpostCore

/// Events for outbox tests, with fixed times and seeded ids.
final class EventMaker: @unchecked Sendable {
    var rng = SplitMix64(seed: 42)
    var clock = RFC3339.parse("2026-11-24T02:00:00+01:00")!.time

    func make(_ type: EventType, _ state: EventState = .active, sensor: String? = "bed", correlation: EventID? = nil, data: [(String, JSONValue)] = []) -> Event {
        clock = clock + .seconds(1)
        let id = EventID.v7(unixMilliseconds: clock.millisecondsSinceEpoch, using: &rng)
        let kind = EventCatalog.kind(of: type)!
        return Event(
            eventID: id, eventClass: kind.eventClass, type: type, state: state, correlationID: correlation ?? id, priority: kind.priority,
            sensor: sensor.flatMap(SensorID.init), room: .bedroom, rule: nil,
            occurredAt: EventTime(wall: clock, utcOffsetSeconds: 3600, boottimeNanoseconds: 1, bootID: "test", clockSynced: true),
            codes: EventCatalog.codes(for: type, state: state, role: .bed, room: .bedroom), data: data)
    }

    func open(_ path: String, limits: OutboxLimits = OutboxLimits()) throws -> Outbox {
        try Outbox(path: path, limits: limits, now: { [unowned self] in self.clock }) { [unowned self] type, state, correlation, data in
            self.make(type, state, sensor: nil, correlation: correlation, data: data)
        }
    }
}

extension Outbox {
    /// The alarm lane's next alarm, as the agent sends it: alone, read without a write.
    func nextAlarm() throws -> OutboxBatch? { try queuedAlarms(skipping: [], limit: 1).first.map(OutboxBatch.alarm) }

    /// A whole rewrite pass, step after step as the clock correction runs it: how many changed.
    func rewriteAll(containing needle: String? = nil, limit: Int = 256,
                    _ transform: (StoredEvent) -> (payload: [UInt8], occurredAt: WallTime)?) throws -> Int {
        var cursor: RewriteCursor? = .start, total = 0
        while let at = cursor {
            let step = try rewriteQueued(containing: needle, from: at, limit: limit, transform)
            total += step.rewritten
            cursor = step.next
        }
        return total
    }
}

func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let dir = NSTemporaryDirectory() + "vaktpost-outbox-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}

func allDelivered(_ batch: OutboxBatch) -> [EventID: DeliveryOutcome] {
    Dictionary(uniqueKeysWithValues: batch.events.map { ($0.eventID, .delivered) })
}

func noBody(_ id: String, _ events: [StoredEvent]) -> [UInt8] { Array("\(id):\(events.map(\.seq))".utf8) }

/// The directory the test bundle and the `outbox-probe` binary are built into.
func builtProduct(_ name: String) throws -> String {
    let dir = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")).deletingLastPathComponent()
    for candidate in [dir, dir.deletingLastPathComponent()] {
        let path = candidate.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: name])
}
