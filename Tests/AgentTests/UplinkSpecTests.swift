import Foundation
import Testing
import TestSupport
@testable import Agent
import VaktpostCore
import VaktpostPosix

/// docs/openapi.yaml is the contract response platforms implement. It must validate as OpenAPI
/// 3.1, and the events the agent actually writes must validate against its Event schema.
@Suite struct UplinkSpecTests {
    static let python = #"""
    import json, sys, yaml
    from jsonschema import Draft202012Validator
    from openapi_spec_validator import validate
    spec = yaml.safe_load(open(sys.argv[1]))
    validate(spec)
    validator = Draft202012Validator({"$ref": "#/components/schemas/Event", "components": spec["components"]})
    bad = 0
    for n, line in enumerate(open(sys.argv[2]), 1):
        for error in validator.iter_errors(json.loads(line)):
            bad += 1
            print("event %d: %s at %s" % (n, error.message, list(error.path)))
    print("checked %d events, %d errors" % (n, bad))
    sys.exit(1 if bad else 0)
    """#

    @Test func theSpecValidatesAndTheAgentsEventsMatchIt() throws {
        // Every event the domain fixtures produce, numbered as the outbox would number them.
        var lines: [String] = []
        var seq: UInt64 = 0
        for (name, configName) in [("besto-alarm", "home"), ("vik-door-at-night", "home"), ("fall", "home"), ("inactivity", "home"),
                                   ("not-up-by", "home"), ("sensor-silent", "supervised"), ("battery-hysteresis", "supervised")] {
            let (config, zone) = try fixtureConfig(configName)
            let text = String(decoding: try Files.read("\(scenarios)/\(name).jsonl"), as: UTF8.self)
            for var event in try replay(config, zone, try Scenario.parse(text, sensors: config.sensors.map(\.id)).get().map(\.step)) {
                seq += 1
                event.seq = seq
                lines.append(event.json.serialized)
            }
        }
        #expect(lines.count > 20)
        let dir = NSTemporaryDirectory() + "vaktpost-spec-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try lines.joined(separator: "\n").write(toFile: dir + "/events.jsonl", atomically: true, encoding: .utf8)
        let (status, text) = try runProgram("/usr/bin/env", ["python3", "-c", Self.python, repositoryRoot + "/docs/openapi.yaml", dir + "/events.jsonl"])
        #expect(status == 0, "\(text)")
        #expect(text.contains("checked \(lines.count) events, 0 errors"), "\(text)")
    }
}

/// The batch body the hub stores and sends must be an EventBatch of the spec, byte for byte
/// carrying the events the outbox serialized; the platform's answer must read back.
@Suite struct BatchProtocolTests {
    static let python = #"""
    import json, sys, yaml
    from jsonschema import Draft202012Validator
    spec = yaml.safe_load(open(sys.argv[1]))
    v = Draft202012Validator({"$ref": "#/components/schemas/EventBatch", "components": spec["components"]})
    errors = list(v.iter_errors(json.load(open(sys.argv[2]))))
    for e in errors: print(e.message, list(e.path))
    r = Draft202012Validator({"$ref": "#/components/schemas/BatchResult", "components": spec["components"]})
    answer = {"results": [{"eventId": "0190f3c1-7b2e-7a44-9d0e-5c1f2a9b8e01", "status": "rejected", "problem": {"title": "Bad", "detail": "unknown type"}}],
              "serverTime": "2026-03-29T03:20:00+02:00"}
    errors += list(r.iter_errors(answer))
    print("errors: %d" % len(errors))
    sys.exit(1 if errors else 0)
    """#

    @Test func theBatchBodyIsAnEventBatchOfTheSpec() throws {
        let (config, zone) = try fixtureConfig("home")
        let text = String(decoding: try Files.read("\(scenarios)/besto-alarm.jsonl"), as: UTF8.self)
        var seq: UInt64 = 100
        let events = try replay(config, zone, try Scenario.parse(text, sensors: config.sensors.map(\.id)).get().map(\.step)).map { e -> [UInt8] in
            var e = e
            seq += 1
            e.seq = seq
            return Array(e.json.serialized.utf8)
        }
        let body = BatchProtocol.body(hubID: "hub-0001", batchID: "0190f3c1-7b2e-7a44-9d0e-5c1f2a9b8e01", sentAt: "2026-11-24T02:41:00.000+01:00",
                                      bootID: "b", boottimeNanoseconds: 42, events: events)
        // The events are inside unchanged.
        let parsed = try JSONValue.parse(String(decoding: body, as: UTF8.self))
        #expect(parsed["events"] == .array(try events.map { try JSONValue.parse(String(decoding: $0, as: UTF8.self)) }))
        let dir = NSTemporaryDirectory() + "vaktpost-batch-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(body).write(to: URL(fileURLWithPath: dir + "/batch.json"))
        let (status, report) = try runProgram("/usr/bin/env", ["python3", "-c", Self.python, repositoryRoot + "/docs/openapi.yaml", dir + "/batch.json"])
        #expect(status == 0, "\(report)")
    }

    @Test func thePlatformsAnswerReadsIntoOutcomes() throws {
        let a = try #require(EventID("0190f3c1-7b2e-7a44-9d0e-5c1f2a9b8e01"))
        let b = try #require(EventID("0190f3c1-7b2e-7a44-9d0e-5c1f2a9b8e02"))
        let c = try #require(EventID("0190f3c1-7b2e-7a44-9d0e-5c1f2a9b8e03"))
        let body = """
            {"results": [{"eventId": "\(a)", "status": "accepted"}, {"eventId": "\(b)", "status": "duplicate"},
             {"eventId": "\(c)", "status": "rejected", "problem": {"title": "Bad event", "detail": "unknown type x.y"}},
             {"eventId": "not-an-id", "status": "accepted"}, {"eventId": "\(a)", "status": "maybe"}],
             "serverTime": "2026-03-29T03:20:00+02:00"}
            """
        #expect(BatchProtocol.answer(Array(body.utf8)) == .outcomes([a: .accepted, b: .duplicate, c: .rejected(reason: "unknown type x.y")]))
        #expect(BatchProtocol.answer(Array("<html>oops</html>".utf8)) == .unreadable("the platform's answer has no \"results\" list"))
    }
}
