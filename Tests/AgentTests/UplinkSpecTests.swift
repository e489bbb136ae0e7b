import Foundation
import Testing
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
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", Self.python, repositoryRoot + "/docs/openapi.yaml", dir + "/events.jsonl"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("checked \(lines.count) events, 0 errors"), "\(text)")
    }
}
