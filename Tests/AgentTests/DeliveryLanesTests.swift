import Synchronization
import Foundation
import Outbox
import Testing
import Uplink
@testable import Agent
import VaktpostCore

/// A dev PKI (deploy/pki.sh) and the platform stub (Tests/Fixtures/platform_stub.py) on loopback.
final class PlatformStub {
    static let pki: String = {
        let dir = NSTemporaryDirectory() + "vaktpost-lanes-pki-\(getpid())"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [repositoryRoot + "/deploy/pki.sh", dir, "hub-0001", "hub-0002"]
        p.standardOutput = FileHandle.nullDevice
        try! p.run()
        p.waitUntilExit()
        return dir
    }()

    let process = Process()
    let port: Int

    init() throws {
        let pki = Self.pki
        let portFile = NSTemporaryDirectory() + "vaktpost-stub-\(UUID().uuidString)"
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", repositoryRoot + "/Tests/Fixtures/platform_stub.py", "\(pki)/server.pem", "\(pki)/server.key", "\(pki)/ca.pem", portFile]
        process.standardError = FileHandle.nullDevice
        try process.run()
        var port: Int? = nil
        for _ in 0..<300 where port == nil {
            port = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { Int($0) }
            if port == nil { usleep(10_000) }
        }
        try? FileManager.default.removeItem(atPath: portFile)
        self.port = try #require(port)
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    var url: String { "https://localhost:\(port)" }

    func tls(hub: String = "hub-0001") -> TLSSettings {
        TLSSettings(caFile: "\(Self.pki)/ca.pem", clientCert: "\(Self.pki)/\(hub).pem", clientKey: "\(Self.pki)/\(hub).key", connectTimeout: .seconds(5), totalTimeout: .seconds(10))
    }

    func control(_ method: String, _ path: String, _ body: String? = nil) throws -> [String: Any] {
        let r = try HTTPClient(tls: tls()).send(method, url + path, headers: ["Content-Type: application/json"], body: body.map { Array($0.utf8) })
        return try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
    }

    func mode(batch: String, alarm: String) throws { _ = try control("POST", "/control/mode", "{\"batch\": \"\(batch)\", \"alarm\": \"\(alarm)\"}") }

    /// (eventId, class, seq, how) in arrival order, and the duplicates the stub refused to store twice.
    func state() throws -> (arrivals: [[Any]], duplicates: Int) {
        let s = try control("GET", "/control/state")
        return (s["arrivals"] as? [[Any]] ?? [], s["duplicates"] as? Int ?? -1)
    }
}

func wallNow() -> WallTime {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return WallTime(secondsSinceEpoch: Int64(ts.tv_sec), nanoseconds: Int64(ts.tv_nsec))
}

final class Reports: Sendable {
    let all = Mutex<[DeliveryLanes.Report]>([])
}

@Suite(.serialized) struct DeliveryLanesTests {
    var rng = SplitMix64(seed: 11)

    mutating func event(_ type: EventType, _ state: EventState = .active) -> Event {
        let t = wallNow()
        let id = EventID.v7(unixMilliseconds: t.millisecondsSinceEpoch, using: &rng)
        let kind = EventCatalog.kind(of: type)!
        return Event(eventID: id, eventClass: kind.eventClass, type: type, state: state, correlationID: id, priority: kind.priority,
                     sensor: SensorID("bed"), room: .bedroom, rule: nil,
                     occurredAt: EventTime(wall: t, utcOffsetSeconds: 3600, boottimeNanoseconds: 1, bootID: "b", clockSynced: true),
                     codes: EventCatalog.codes(for: type, state: state, role: .bed, room: .bedroom), data: [])
    }

    func lanes(_ stub: PlatformStub, dir: String, hub: String = "hub-0001", reports: Reports) throws -> DeliveryLanes {
        let outbox = try Outbox(path: dir + "/outbox.sqlite", now: wallNow) { _, _, _, _ in fatalError("no outbox events expected") }
        let settings = UplinkSettings(baseURL: stub.url, hubID: "hub-0001", tls: stub.tls(hub: hub),
                                      alarmBackoff: Backoff(base: .milliseconds(50), cap: .milliseconds(200)),
                                      bulkBackoff: Backoff(base: .milliseconds(200), cap: .seconds(1)), idle: .milliseconds(100), alarmsFirstGrace: .seconds(3))
        return DeliveryLanes(settings: settings, outbox: LockedOutbox(outbox), bootID: "b", now: wallNow) { r in reports.all.withLock { $0.append(r) } }
    }

    func waitUntil(_ seconds: Double, _ done: () throws -> Bool) rethrows -> Bool {
        let end = wallNow() + .milliseconds(Int64(seconds * 1000))
        while wallNow() < end {
            if try done() { return true }
            usleep(50_000)
        }
        return try done()
    }

    /// The bulk lane cannot deliver (the platform refuses batches), yet the alarm gets through:
    /// the alarm lane never waits behind the bulk backlog.
    @Test mutating func theAlarmGetsThroughWhileBatchesAreRefused() throws {
        let stub = try PlatformStub()
        try stub.mode(batch: "down", alarm: "up")
        try withTemporaryDirectory { dir in
            let reports = Reports()
            let l = try lanes(stub, dir: dir, reports: reports)
            let bulk = (0..<300).map { _ in event(.bedState, .update) }
            let alarm = event(.fallDetected)
            try l.withOutbox { try $0.append(bulk); try $0.append([alarm]) }
            l.start()
            defer { l.stop() }
            #expect(try waitUntil(5) { try stub.state().arrivals.count == 1 })
            let arrivals = try stub.state().arrivals
            #expect(arrivals.first?[0] as? String == alarm.eventID.description)
            #expect(try l.withOutbox { try $0.status().lanes[.alarm]?.depth } == 0)
            #expect(try l.withOutbox { try $0.status().lanes[.bulk]?.depth } == 300)
        }
    }

    /// An outage with 1000 queued bulk events and then an alarm: when the platform returns,
    /// everything arrives exactly once, and the alarm is not behind the backlog.
    @Test mutating func afterAnOutageEverythingArrivesOnceAndTheAlarmFirst() throws {
        let stub = try PlatformStub()
        try stub.mode(batch: "down", alarm: "down")
        try withTemporaryDirectory { dir in
            let reports = Reports()
            let l = try lanes(stub, dir: dir, reports: reports)
            l.start()
            defer { l.stop() }
            var all: [Event] = []
            for _ in 0..<10 {
                let chunk = (0..<100).map { _ in event(.bedState, .update) }
                all += chunk
                try l.withOutbox { try $0.append(chunk) }
                l.wake()
            }
            usleep(500_000)  // the lanes are failing and backing off
            let alarm = event(.bedNotReturned)
            all.append(alarm)
            try l.withOutbox { try $0.append([alarm]) }
            l.wake()
            usleep(300_000)
            try stub.mode(batch: "up", alarm: "up")
            #expect(try waitUntil(20) { try stub.state().arrivals.count == 1001 })
            let (arrivals, duplicates) = try stub.state()
            #expect(Set(arrivals.map { $0[0] as! String }) == Set(all.map(\.eventID.description)), "lost or unknown events")
            #expect(arrivals.count == 1001)
            let alarmIndex = try #require(arrivals.firstIndex { $0[0] as? String == alarm.eventID.description })
            #expect(alarmIndex < 100, "the alarm arrived as number \(alarmIndex + 1), behind the backlog")
            #expect(duplicates >= 0)
            #expect(try waitUntil(5) { try l.withOutbox { try $0.status().lanes.values.map(\.depth).reduce(0, +) } == 0 })
        }
    }

    @Test mutating func aRejectedBatchBecomesDeadLettersAndIsReported() throws {
        let stub = try PlatformStub()
        try stub.mode(batch: "reject", alarm: "up")
        try withTemporaryDirectory { dir in
            let reports = Reports()
            let l = try lanes(stub, dir: dir, reports: reports)
            try l.withOutbox { try $0.append((0..<3).map { _ in event(.bedState, .update) }) }
            l.start()
            defer { l.stop() }
            #expect(try waitUntil(5) { try l.withOutbox { try $0.deadLetters().count } == 3 })
            #expect(try l.withOutbox { try $0.deadLetters().first?.reason } == "HTTP 422: test rejection")
            #expect(reports.all.withLock { $0.contains(.rejected(count: 3, reason: "HTTP 422: test rejection")) })
        }
    }

    /// A certificate for another hub is refused by the platform: reported, and retried slowly.
    @Test mutating func anotherHubsCertificateIsReportedAsUnauthorized() throws {
        let stub = try PlatformStub()
        try withTemporaryDirectory { dir in
            let reports = Reports()
            let l = try lanes(stub, dir: dir, hub: "hub-0002", reports: reports)
            try l.withOutbox { try $0.append([event(.fallDetected)]) }
            l.start()
            defer { l.stop() }
            #expect(waitUntil(5) { reports.all.withLock { $0.contains(.unauthorized(status: 403)) } })
            #expect(try stub.state().arrivals.isEmpty)
            #expect(try l.withOutbox { try $0.status().lanes[.alarm]?.depth } == 1)  // kept, not dropped
        }
    }
}
