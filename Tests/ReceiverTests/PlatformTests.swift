import Foundation
import Receiver
import Synchronization
import Testing
import TestSupport
import VaktpostCore

/// The reference receiver's decisions, without sockets: what docs/openapi.yaml says a platform does.
final class TestClock: Sendable {
    let time = Mutex(WallTime(secondsSinceEpoch: 1_795_000_000))
    func now() -> WallTime { time.withLock { $0 } }
    func advance(_ d: Duration) { time.withLock { $0 = $0 + d } }
}

func event(_ id: String, seq: Int, cls: String = "state", type: String = "bed.state", state: String = "update") -> String {
    """
    {"schema":"hub-event/1","eventId":"\(id)","seq":\(seq),"bootId":"b","class":"\(cls)","type":"\(type)","state":"\(state)",\
    "correlationId":"\(id)","priority":1,"occurredAt":"2026-11-24T02:00:00.000+01:00","clock":{"synced":true,"boottimeNs":5},\
    "codes":{"scaip":{"dty":"0012"},"vkp":{}},"data":{}}
    """
}

func id(_ n: Int) -> String { "0190f3c1-7b2e-7a44-9d0e-" + String(repeating: "0", count: 12 - String(n).count) + String(n) }

func batch(_ key: String, _ events: [String]) -> ReceiverRequest {
    let body = "{\"hubId\":\"hub-0001\",\"batchId\":\"\(key)\",\"sentAt\":\"2026-11-24T02:00:00Z\",\"bootId\":\"b\",\"events\":[\(events.joined(separator: ","))]}"
    return ReceiverRequest(method: "POST", target: "/v1/hubs/hub-0001/events:batch", headers: ["Idempotency-Key": "\"\(key)\""], body: Array(body.utf8), certificateHubs: ["hub-0001"])
}

extension ReceiverOutcome {
    var response: ReceiverResponse {
        guard case .respond(let r) = self else { fatalError("expected an answer, got \(self)") }
        return r
    }
}

extension ReceiverResponse {
    var json: JSONValue { (try? JSONValue.parse(String(decoding: body, as: UTF8.self))) ?? .null }
}

func makePlatform(_ clock: TestClock, options: Platform.Options = .init()) throws -> (Platform, String) {
    let dir = NSTemporaryDirectory() + "vaktpost-platform-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return (Platform(store: try ReceiverStore(path: dir + "/r.sqlite"), options: options, now: clock.now), dir)
}

@Suite struct PlatformTests {
    @Test func aBatchIsStoredOnceAndARetryGetsTheSameAnswer() throws {
        let clock = TestClock()
        let (p, _) = try makePlatform(clock)
        let first = p.handle(batch(id(100), [event(id(1), seq: 1), event(id(2), seq: 2)])).response
        #expect(first.status == 200)
        let statuses = { (r: ReceiverResponse) -> [String] in
            guard case .array(let rs)? = r.json["results"] else { return [] }
            return rs.compactMap { $0["status"]?.stringValue }
        }
        #expect(statuses(first) == ["accepted", "accepted"])
        // The same key and bytes: the stored answer, not a second storing.
        #expect(p.handle(batch(id(100), [event(id(1), seq: 1), event(id(2), seq: 2)])).response == first)
        // The same key with other bytes is a hub bug.
        #expect(p.handle(batch(id(100), [event(id(1), seq: 1)])).response.status == 422)
        // A new batch with a known event: that one is a duplicate.
        #expect(statuses(p.handle(batch(id(101), [event(id(2), seq: 2), event(id(3), seq: 3)])).response) == ["duplicate", "accepted"])
        let arrivals = p.admin(ReceiverRequest(method: "GET", target: "/api/arrivals")).json
        guard case .array(let stored)? = arrivals["arrivals"] else { Issue.record("no arrivals"); return }
        #expect(stored.compactMap { $0["eventId"]?.stringValue } == [id(1), id(2), id(3)])
        #expect(arrivals["duplicates"] == .int(1))
    }

    @Test func anIdempotencyKeyIsKeptForTheRetentionThenForgotten() throws {
        let clock = TestClock()
        let (p, _) = try makePlatform(clock, options: .init(idempotencyRetention: .seconds(86_400)))
        #expect(p.handle(batch(id(100), [event(id(1), seq: 1)])).response.status == 200)
        clock.advance(.seconds(86_399))
        // Within the day: the key still holds, so other bytes under it are a hub bug.
        #expect(p.handle(batch(id(100), [event(id(2), seq: 2)])).response.status == 422)
        clock.advance(.seconds(2))
        // Past it: the key is forgotten and the request is a new one; its event is still stored
        // once by eventId, so a late retry of the first batch is answered as a duplicate.
        let late = p.handle(batch(id(100), [event(id(1), seq: 1)])).response
        #expect(late.status == 200)
        guard case .array(let rs)? = late.json["results"] else { Issue.record("no results"); return }
        #expect(rs.map { $0["status"] } == [.string("duplicate")])
    }

    @Test func anInvalidEventIsRejectedAloneWithTheReason() throws {
        let (p, _) = try makePlatform(TestClock())
        let bad = event(id(2), seq: 0)
        let r = p.handle(batch(id(100), [event(id(1), seq: 1), bad])).response
        guard case .array(let rs)? = r.json["results"] else { Issue.record("no results"); return }
        #expect(rs[0]["status"] == .string("accepted"))
        #expect(rs[1]["status"] == .string("rejected"))
        #expect(rs[1]["problem"]?["detail"] == .string("seq must be an integer >= 1"))
        var noKey = batch(id(101), [event(id(3), seq: 3)])
        noKey.headers["idempotency-key"] = nil
        #expect(p.handle(noKey).response.status == 400)
    }

    @Test func theCertificateMustNameTheHubInThePath() throws {
        let (p, _) = try makePlatform(TestClock())
        var r = batch(id(100), [event(id(1), seq: 1)])
        r.certificateHubs = []
        #expect(p.handle(r).response.status == 401)
        r.certificateHubs = ["hub-0002"]
        let refused = p.handle(r).response
        #expect(refused.status == 403)
        #expect(refused.headers["Content-Type"] == "application/problem+json")
    }

    @Test func anAlarmIsFollowedFromReceivedToAcknowledged() throws {
        let clock = TestClock()
        let (p, _) = try makePlatform(clock, options: .init(acknowledgeAfter: .seconds(30)))
        let post = ReceiverRequest(method: "POST", target: "/v1/hubs/hub-0001/alarms", body: Array(event(id(7), seq: 7, cls: "alarm", type: "fall.detected", state: "active").utf8),
                                   certificateHubs: ["hub-0001"])
        let r = p.handle(post).response
        #expect(r.status == 202)
        #expect(r.headers["Location"] == "/v1/hubs/hub-0001/alarms/\(id(7))")
        #expect(r.json["status"] == .string("received"))
        #expect(p.handle(post).response.headers["Location"] == r.headers["Location"], "a repeat answers the same")
        let get = ReceiverRequest(method: "GET", target: r.headers["Location"]!, certificateHubs: ["hub-0001"])
        #expect(p.handle(get).response.json["status"] == .string("received"))
        clock.advance(.seconds(30))
        #expect(p.handle(get).response.json["status"] == .string("acknowledged"))
        // An operator closes it on the admin side.
        #expect(p.admin(ReceiverRequest(method: "POST", target: "/api/hubs/hub-0001/alarms/\(id(7))/close")).status == 200)
        #expect(p.handle(get).response.json["status"] == .string("closed"))
        let unknown = ReceiverRequest(method: "GET", target: "/v1/hubs/hub-0001/alarms/\(id(8))", certificateHubs: ["hub-0001"])
        #expect(p.handle(unknown).response.status == 404)
    }

    /// Support staff's page shows a sensor whose packets the hub refuses as refused, with why,
    /// where its state would be: it is sending, and not heard.
    @Test func aRefusedSensorShowsOnThePage() throws {
        let (p, _) = try makePlatform(TestClock())
        let body = """
            {"sentAt":"x","outbox":{"depth":0,"oldestAgeS":0},"sensors":[{"deviceId":"fall","refused":{"reason":"the MIC does not verify","count":3,\
            "since":"2026-12-07T03:10:00.000+01:00"}},{"deviceId":"bed","state":"occupied"}]}
            """
        #expect(p.handle(ReceiverRequest(method: "POST", target: "/v1/hubs/hub-0001/heartbeat", body: Array(body.utf8), certificateHubs: ["hub-0001"])).response.status == 200)
        let page = String(decoding: p.admin(ReceiverRequest(method: "GET", target: "/")).body, as: UTF8.self)
        #expect(page.contains("<td>fall</td><td>REFUSED x3: the MIC does not verify</td>"), "\(page)")
        #expect(page.contains("<td>bed</td><td>occupied</td>"))
    }

    @Test func heartbeatsConfigAndCommands() throws {
        let (p, _) = try makePlatform(TestClock())
        let hb = ReceiverRequest(method: "POST", target: "/v1/hubs/hub-0001/heartbeat", body: Array("{\"sentAt\":\"x\",\"outbox\":{\"depth\":0,\"oldestAgeS\":0}}".utf8),
                                 certificateHubs: ["hub-0001"])
        #expect(p.handle(hb).response.json["nextHeartbeatSec"] == nil, "unless told, the platform leaves the interval to the hub")
        #expect(p.admin(ReceiverRequest(method: "PUT", target: "/api/hubs/hub-0001/heartbeat-interval", body: Array("{\"seconds\": 30}".utf8))).status == 200)
        #expect(p.handle(hb).response.json["nextHeartbeatSec"] == .int(30))

        let config = ReceiverRequest(method: "GET", target: "/v1/hubs/hub-0001/config", certificateHubs: ["hub-0001"])
        #expect(p.handle(config).response.status == 404)
        let put = p.admin(ReceiverRequest(method: "PUT", target: "/api/hubs/hub-0001/config", body: Array("[hub]\nid = \"hub-0001\"\n".utf8)))
        let etag = try #require(put.json["etag"]?.stringValue)
        #expect(p.handle(hb).response.json["configEtag"] == .string(etag))
        let fetched = p.handle(config).response
        #expect(fetched.status == 200)
        #expect(fetched.headers["ETag"] == etag)
        var again = config
        again.headers["if-none-match"] = etag
        #expect(p.handle(again).response.status == 304)

        let poll = ReceiverRequest(method: "GET", target: "/v1/hubs/hub-0001/commands?after=0&wait=20", certificateHubs: ["hub-0001"])
        #expect(p.handle(poll) == .pollAgain(wait: .seconds(20)))
        _ = p.admin(ReceiverRequest(method: "POST", target: "/api/hubs/hub-0001/commands", body: Array("{\"kind\": \"set-heartbeat\", \"args\": {\"seconds\": 120}}".utf8)))
        #expect(p.handle(hb).response.json["commandsPending"] == .bool(true))
        let list = p.handle(poll).response
        #expect(PlatformCommand.list(list.body) == [PlatformCommand(id: "cmd-1", seq: 1, kind: .setHeartbeat(seconds: 120))])
        let result = ReceiverRequest(method: "POST", target: "/v1/hubs/hub-0001/commands/cmd-1/result",
                                     body: PlatformCommand.result(id: "cmd-1", .done, detail: [("heartbeatSec", .int(120))]), certificateHubs: ["hub-0001"])
        #expect(p.handle(result).response.status == 200)
        #expect(p.handle(result).response.status == 200, "a repeat is harmless")
        #expect(p.handle(hb).response.json["commandsPending"] == .bool(false))
    }

    @Test func faultSwitchesHitTheirScopeOnly() throws {
        let clock = TestClock()
        let (p, _) = try makePlatform(clock)
        p.faults = Faults(downUntil: clock.now() + .seconds(10), retryAfterSeconds: 2, failStatus: 429, scope: .batches)
        let down = p.handle(batch(id(100), [event(id(1), seq: 1)])).response
        #expect(down.status == 429)
        #expect(down.headers["Retry-After"] == "2")
        let alarm = ReceiverRequest(method: "POST", target: "/v1/hubs/hub-0001/alarms", body: Array(event(id(2), seq: 2, cls: "alarm", type: "fall.detected", state: "active").utf8),
                                    certificateHubs: ["hub-0001"])
        #expect(p.handle(alarm).response.status == 202)
        clock.advance(.seconds(10))
        #expect(p.handle(batch(id(100), [event(id(1), seq: 1)])).response.status == 200)
    }

    @Test func theDropFaultClosesEveryNthConnectionInItsScope() throws {
        let clock = TestClock()
        let (p, dir) = try makePlatform(clock)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let set = p.admin(ReceiverRequest(method: "POST", target: "/api/faults", body: Array("{\"dropEvery\": 3, \"scope\": \"alarms\"}".utf8)))
        #expect(set.json["dropEvery"] == .int(3))
        let alarm = { (n: Int) in
            ReceiverRequest(method: "POST", target: "/v1/hubs/hub-0001/alarms", body: Array(event(id(n), seq: n, cls: "alarm", type: "fall.detected", state: "active").utf8),
                            certificateHubs: ["hub-0001"])
        }
        var outcomes: [ReceiverOutcome] = []
        for n in 1...6 {
            // Batches are outside the scope: they neither count nor drop.
            #expect(p.handle(batch(id(100 + n), [event(id(50 + n), seq: 50 + n)])).response.status == 200)
            outcomes.append(p.handle(alarm(n)))
        }
        #expect(outcomes.map { $0 == .dropConnection } == [false, false, true, false, false, true])
        #expect(p.admin(ReceiverRequest(method: "GET", target: "/api/faults")).json["dropped"] == .int(2))
        #expect(p.admin(ReceiverRequest(method: "POST", target: "/api/faults", body: Array("{\"dropEvery\": -1}".utf8))).status == 400)
    }

    @Test func linesFromALogForwarderAreStoredOnceByEventId() throws {
        let clock = TestClock()
        let (p, dir) = try makePlatform(clock)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lines = { (body: String) in
            ReceiverRequest(method: "POST", target: "/v1/hubs/hub-0001/events:ndjson", body: Array(body.utf8), certificateHubs: ["hub-0001"])
        }
        let body = [event(id(1), seq: 1), event(id(2), seq: 2), event(id(3), seq: 0)].joined(separator: "\n") + "\n"
        let first = p.handle(lines(body)).response
        #expect(first.status == 200)
        #expect(first.json["accepted"] == .int(2) && first.json["rejected"] == .int(1))
        // A log forwarder resends a whole request after a lost answer: nothing is stored twice.
        let again = p.handle(lines(body)).response
        #expect(again.json["accepted"] == .int(0) && again.json["duplicate"] == .int(2))
        let broken = p.handle(lines(event(id(4), seq: 4) + "\nnot json\n")).response
        #expect(broken.status == 400)
        #expect(String(decoding: broken.body, as: UTF8.self).contains("line 2 is not JSON"))
        #expect(p.handle(lines(event(id(4), seq: 4))).response.json["accepted"] == .int(1), "a refused request stored nothing")
        let other = ReceiverRequest(method: "POST", target: "/v1/hubs/hub-0002/events:ndjson", body: Array(body.utf8), certificateHubs: ["hub-0001"])
        #expect(p.handle(other).response.status == 403)
    }

    @Test func theGarbageFaultAnswers200WithAPageNotJSON() throws {
        let clock = TestClock()
        let (p, dir) = try makePlatform(clock)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        p.faults = Faults(downUntil: clock.now() + .seconds(10), failStatus: 200)
        let answer = p.handle(batch(id(100), [event(id(1), seq: 1)])).response
        #expect(answer.status == 200)
        #expect(answer.headers["Content-Type"] == "text/html")
        #expect(answer.json == .null, "not JSON")
        clock.advance(.seconds(10))
        let after = p.handle(batch(id(100), [event(id(1), seq: 1)])).response
        #expect(String(decoding: after.body, as: UTF8.self).contains("\"status\":\"accepted\""), "the garbage answer stored nothing")
    }

    /// The receiver's answers, and the hub's heartbeat and command result, must match the spec's
    /// schemas (docs/openapi.yaml).
    @Test func theAnswersMatchTheSpec() throws {
        let clock = TestClock()
        let (p, dir) = try makePlatform(clock, options: .init(heartbeatSeconds: 60, acknowledgeAfter: .seconds(1)))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var samples: [(String, ReceiverResponse)] = []
        samples.append(("BatchResult", p.handle(batch(id(100), [event(id(1), seq: 1), event(id(2), seq: 0)])).response))
        let alarm = ReceiverRequest(method: "POST", target: "/v1/hubs/hub-0001/alarms", body: Array(event(id(3), seq: 3, cls: "alarm", type: "fall.detected", state: "active").utf8),
                                    certificateHubs: ["hub-0001"])
        samples.append(("AlarmStatus", p.handle(alarm).response))
        clock.advance(.seconds(2))
        samples.append(("AlarmStatus", p.handle(ReceiverRequest(method: "GET", target: "/v1/hubs/hub-0001/alarms/\(id(3))", certificateHubs: ["hub-0001"])).response))
        _ = p.admin(ReceiverRequest(method: "POST", target: "/api/hubs/hub-0001/commands", body: Array("{\"kind\": \"diagnostics\"}".utf8)))
        samples.append(("CommandList", p.handle(ReceiverRequest(method: "GET", target: "/v1/hubs/hub-0001/commands", certificateHubs: ["hub-0001"])).response))
        samples.append(("HeartbeatReply", p.handle(ReceiverRequest(method: "POST", target: "/v1/hubs/hub-0001/heartbeat",
                                                                    body: Array("{\"sentAt\":\"x\",\"outbox\":{}}".utf8), certificateHubs: ["hub-0001"])).response))
        samples.append(("Problem", p.handle(ReceiverRequest(method: "GET", target: "/v1/hubs/hub-0001/config", certificateHubs: ["hub-0002"])).response))
        samples.append(("Problem", p.handle(batch(id(100), [event(id(1), seq: 1)])).response))
        // And what the hub sends: its Heartbeat and a CommandResult.
        var health = HealthSnapshot(swVersion: "0.1.0", configVersion: "\"abc\"", uptime: .seconds(90), outboxDepth: 3, oldestQueued: clock.now() - .seconds(40),
                                    highestSeqQueued: 17, sensors: [.init(deviceID: "bed", lastSeen: clock.now(), batteryPercent: 80, rssi: -61, state: "occupied")],
                                    receivers: [.init(name: "usb300", present: true, version: "2.1")], diskFreePercent: 71.25)
        health.configPending = "\"abd\""
        samples.append(("Heartbeat", ReceiverResponse(status: 0, body: Array(health.heartbeat(hubID: "hub-0001", bootID: "b", boottimeNanoseconds: 9, now: clock.now(), zone: .utc).serialized.utf8))))
        samples.append(("CommandResult", ReceiverResponse(status: 0, body: PlatformCommand.result(id: "cmd-1", .refused, detail: [("reason", .string("x"))]))))
        let lines = samples.map { "\($0.0)\t\(String(decoding: $0.1.body, as: UTF8.self))" }.joined(separator: "\n")
        try lines.write(toFile: dir + "/answers.tsv", atomically: true, encoding: .utf8)
        let python = #"""
        import json, sys, yaml
        from jsonschema import Draft202012Validator
        spec = yaml.safe_load(open(sys.argv[1]))
        bad = 0
        for n, line in enumerate(open(sys.argv[2]), 1):
            schema, body = line.rstrip("\n").split("\t", 1)
            v = Draft202012Validator({"$ref": "#/components/schemas/" + schema, "components": spec["components"]})
            for e in v.iter_errors(json.loads(body)):
                bad += 1
                print("answer %d (%s): %s at %s" % (n, schema, e.message, list(e.path)))
        print("checked %d answers, %d errors" % (n, bad))
        sys.exit(1 if bad else 0)
        """#
        let (status, text) = try runProgram("/usr/bin/env", ["python3", "-c", python, repositoryRoot + "/docs/openapi.yaml", dir + "/answers.tsv"])
        #expect(status == 0, "\(text)")
        #expect(text.contains("checked \(samples.count) answers, 0 errors"), "\(text)")
    }
}
