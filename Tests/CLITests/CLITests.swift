import Foundation
import Testing
import TestSupport

/// Runs the built `vaktpost` binary the way a technician does, and reads what it prints.
/// `swift test` builds it beside this test bundle (this target depends on it).
struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}


func vaktpostBinary() throws -> URL {
    let binDir = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")).deletingLastPathComponent()
    let binary = binDir.appendingPathComponent("vaktpost")
    // The test bundle may sit one level down (…/debug/vaktpostPackageTests.xctest).
    return FileManager.default.isExecutableFile(atPath: binary.path) ? binary : binDir.deletingLastPathComponent().appendingPathComponent("vaktpost")
}

func vaktpost(_ arguments: [String]) throws -> Run {
    let process = Process()
    process.executableURL = try vaktpostBinary()
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return Run(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
}

@Suite struct CLITests {
    @Test func configCheckAcceptsTheExample() throws {
        let run = try vaktpost(["config", "check", "--no-files", "--config", repositoryRoot + "/deploy/vaktpost.example.toml"])
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(run.stdout.contains(": OK (3 sensors, 3 rules)"))
    }

    /// The issue's "done when": a misspelled key, a bad duration and a window like 25:00-07:00, in one run, each with its line.
    @Test func configCheckRejectsThreeMistakesInOneRunNamingEachLine() throws {
        let path = NSTemporaryDirectory() + "vaktpost-cli-\(getpid())-bad.toml"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try """
            [hub]
            id = "hub-0001"

            [[sensors]]
            id = "bed"
            role = "bed"
            room = "bedroom"
            supervison = "2h"

            [[rules]]
            id = "night-bed"
            kind = "not-back-in-bed"
            sensor = "bed"
            window = "25:00-07:00"
            after = "30 min"
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let run = try vaktpost(["config", "check", "--config", path])
        #expect(run.status == 1)
        #expect(run.stdout.contains("\(path):8:1: error: unknown key 'supervison' in sensor \"bed\"\n    hint: did you mean 'supervision'?"), "\(run.stdout)")
        #expect(run.stdout.contains("\(path):14:10: error: window \"25:00-07:00\": hour 25 is out of range"))
        #expect(run.stdout.contains("\(path):15:9: error: after: \"30 min\" has a space in it"))
        #expect(run.stdout.contains("3 errors"))
    }

    @Test func configCheckJSON() throws {
        let run = try vaktpost(["config", "check", "--json", "--config", "/nonexistent.toml"])
        #expect(run.status == 1)
        let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        #expect(object?["valid"] as? Bool == false)
        #expect((object?["errors"] as? [[String: Any]])?.first?["hint"] != nil)
    }

    @Test func versionNamesEveryLinkedLibrary() throws {
        let run = try vaktpost(["version"])
        #expect(run.status == 0)
        for name in ["sqlite", "libcurl", "libcrypto", "libudev"] {
            #expect(run.stdout.contains("  \(name): "), "\(run.stdout)")
        }
        #expect(!run.stdout.contains("PROBLEM"))
        #expect(try vaktpost(["--version"]).stdout == "0.1.0\n")
    }

    @Test func anUnknownCommandExplainsItself() throws {
        let run = try vaktpost(["confg"])
        #expect(run.status == 64)  // EX_USAGE
        #expect(run.stderr.contains("Unexpected argument 'confg'"))
        #expect(run.stderr.contains("vaktpost --help"))
        #expect(run.stderr.contains("did you mean 'config'?"))
    }

    /// The agent parses its own command line (no swift-argument-parser): every command has a
    /// help page, and every kind of mistake is a usage error (64) that says what was wrong.
    @Test func everyCommandHasHelpAndMistakesSayWhatWasWrong() throws {
        let commands = [["run"], ["status"], ["check"], ["test-alarm"], ["sensors"], ["events", "tail"], ["wipe"], ["config", "check"],
                        ["decode", "bthome"], ["decode", "esp3"], ["queue", "show"], ["queue", "dead-letters"],
                        ["queue", "retry-dead-letters"], ["replay"], ["scan"], ["version"]]
        for command in commands {
            let run = try vaktpost(command + ["--help"])
            #expect(run.status == 0, "\(command)")
            #expect(run.stdout.hasPrefix("OVERVIEW: "), "\(command): \(run.stdout)")
            #expect(run.stdout.contains("USAGE: vaktpost \(command.joined(separator: " "))"), "\(command): \(run.stdout)")
            #expect(try vaktpost(["help"] + command).stdout == run.stdout, "\(command)")
        }
        let top = try vaktpost([])
        #expect(top.status == 0)
        #expect(top.stdout.contains("SUBCOMMANDS:") && top.stdout.contains("  test-alarm "))
        let runHelp = try vaktpost(["run", "--help"]).stdout.split(separator: "\n")
        #expect(runHelp.contains { $0.hasPrefix("  --socket-mode <MODE> ") && $0.hasSuffix(" The control socket's mode, octal. (default: 660)") })

        let mistakes: [([String], String)] = [
            (["run", "--sped", "3"], "Unknown option '--sped': did you mean '--speed'?"),
            (["run", "--speed"], "Missing value for '--speed <N>'"),
            (["run", "--speed", "fast"], "the value 'fast' is not valid for --speed"),
            (["run", "--speed=0"], "--speed is 1 to 10000"),
            (["replay", "--config", "x.toml"], "Missing expected argument '--scenario <FILE>'"),
            (["events", "tail", "-n", "0"], "--lines must be at least 1"),
            (["status", "--json=yes"], "--json is a flag and takes no value"),
            (["status", "--socket", "a", "--socket", "b"], "--socket was given twice"),
            (["decode", "esp3"], "Missing expected argument '<HEX>'"),
            (["decode", "esp3", "55", "66"], "Unexpected argument '66'"),
            (["queue", "shw"], "Unexpected argument 'shw': did you mean 'show'?"),
        ]
        for (arguments, message) in mistakes {
            let run = try vaktpost(arguments)
            #expect(run.status == 64, "\(arguments): \(run.stderr)")
            #expect(run.stderr.contains(message), "\(arguments): \(run.stderr)")
            #expect(run.stderr.contains("See 'vaktpost "), "\(arguments): \(run.stderr)")
        }
        // The point of parsing it ourselves: FoundationEssentials stays out of the agent binary.
        let binary = try Data(contentsOf: try vaktpostBinary())
        #expect(binary.range(of: Data("20FoundationEssentials".utf8)) == nil, "FoundationEssentials is linked into vaktpost again")
        // Nor the regex engine (1.3 MB of the static binary), which one `String.contains(String)`
        // or `split(separator: String)` brings along: search the bytes (or the UTF-8) instead.
        #expect(binary.range(of: Data("17_StringProcessing".utf8)) == nil, "_StringProcessing (regex) is linked into vaktpost")
        // `--option=value` and a default subcommand (`queue` is `queue show`).
        let queue = try vaktpost(["queue", "--db=/nonexistent/outbox.sqlite"])
        #expect(queue.status == 1)
        #expect(queue.stderr.contains("no outbox at /nonexistent/outbox.sqlite"))
    }
}

@Suite struct ReplayCLITests {
    let scenarios = repositoryRoot + "/Tests/Fixtures/scenarios"

    @Test func replayPrintsOneJSONLinePerEventInTheDocumentedShape() throws {
        let run = try vaktpost(["replay", "--config", scenarios + "/home.toml", "--scenario", scenarios + "/dst-spring-2026.jsonl"])
        #expect(run.status == 0, "\(run.stderr)")
        let lines = run.stdout.split(separator: "\n")
        #expect(lines.count == 4)
        let alarm = try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any]
        #expect(alarm?["at"] as? String == "2026-03-29T03:20:00+02:00")
        #expect(alarm?["type"] as? String == "bed.not_returned")
        #expect(alarm?["class"] as? String == "alarm")
        #expect(alarm?["state"] as? String == "active")
        #expect(alarm?["sensor"] as? String == "bed")
        #expect(alarm?["rule"] as? String == "night-bed")
        #expect(alarm?["correlationId"] as? String == alarm?["eventId"] as? String)
        #expect(lines[1].hasPrefix("{\"at\":\"2026-03-29T03:20:00+02:00\",\"class\":\"alarm\",\"type\":\"bed.not_returned\",\"state\":\"active\",\"sensor\":\"bed\",\"rule\":\"night-bed\",\"correlationId\":"))
        // The same seed gives the same ids; another seed other ids.
        #expect(try vaktpost(["replay", "--config", scenarios + "/home.toml", "--scenario", scenarios + "/dst-spring-2026.jsonl"]).stdout == run.stdout)
        #expect(try vaktpost(["replay", "--seed", "9", "--config", scenarios + "/home.toml", "--scenario", scenarios + "/dst-spring-2026.jsonl"]).stdout != run.stdout)
    }

    @Test func aScenarioErrorNamesTheFileAndLine() throws {
        let path = NSTemporaryDirectory() + "vaktpost-cli-\(getpid())-bad.jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try """
            {"at": "2026-03-29T01:50:00+01:00", "sensor": "bed", "reading": {"occupied": false}}
            {"at": "2026-03-29T01:55:00+01:00", "sensor": "sofa", "seen": true}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let run = try vaktpost(["replay", "--config", scenarios + "/home.toml", "--scenario", path])
        #expect(run.status == 1)
        #expect(run.stderr.hasPrefix("\(path):2: error: unknown sensor \"sofa\""), "\(run.stderr)")
        #expect(run.stdout.isEmpty)
    }

    @Test func aBrokenConfigStopsReplayWithItsErrors() throws {
        let run = try vaktpost(["replay", "--config", scenarios + "/missing.toml", "--scenario", scenarios + "/fall.jsonl"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("cannot read the config"))
    }
}

@Suite struct QueueCLITests {
    func probe(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try vaktpostBinary().deletingLastPathComponent().appendingPathComponent("outbox-probe").path)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }

    @Test func queueShowsDepthPerLaneAndDeadLetters() throws {
        let dir = NSTemporaryDirectory() + "vaktpost-queue-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = dir + "/outbox.sqlite"
        try probe(["ingest", db, "50", "10"])  // every tenth event is an alarm
        let run = try vaktpost(["queue", "--db", db])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("  alarm       5 "), "\(run.stdout)")
        #expect(run.stdout.contains("  bulk       45 "))
        #expect(run.stdout.contains("dead letters: 0"))
        let json = try JSONSerialization.jsonObject(with: Data(try vaktpost(["queue", "--json", "--db", db]).stdout.utf8)) as? [String: Any]
        #expect(((json?["lanes"] as? [String: Any])?["bulk"] as? [String: Any])?["depth"] as? Int == 45)
        #expect(try vaktpost(["queue", "dead-letters", "--db", db]).stdout == "no dead letters\n")
        #expect(try vaktpost(["queue", "retry-dead-letters", "--db", db]).stdout == "0 dead letters put back in the queue\n")
    }

    @Test func aMissingOutboxSaysWhy() throws {
        let run = try vaktpost(["queue", "--db", "/nonexistent/outbox.sqlite"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("no outbox at /nonexistent/outbox.sqlite"))
    }
}

@Suite struct DecodeCLITests {
    /// Every shared BTHome vector through `vaktpost decode bthome`, compared with its `expected`.
    @Test func everySharedBTHomeVectorDecodesThroughTheCLI() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: repositoryRoot + "/../shared/testdata/bthome_vectors.json"))
        let vectors = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        #expect(vectors.count >= 39)
        func same(_ a: Any?, _ b: Any?) -> Bool {
            if let x = a as? NSNumber, let y = b as? NSNumber, !(a is Bool) {
                return abs(x.doubleValue - y.doubleValue) <= max(1e-9, abs(y.doubleValue) * 1e-6)
            }
            if let x = a as? [String: Any], let y = b as? [String: Any] {
                return x.count == y.count && x.allSatisfy { same($0.value, y[$0.key]) }
            }
            return (a as? NSObject) == (b as? NSObject)
        }
        for v in vectors {
            let name = v["name"] as! String
            var args = ["decode", "bthome", "--mac", v["mac"] as! String]
            if let key = v["key"] as? String { args += ["--key", key] }
            for p in v["prior_service_data_hex"] as? [String] ?? [] { args += ["--prior", p] }
            args.append(v["service_data_hex"] as! String)
            let run = try vaktpost(args)
            if v["expect_reject"] as? Bool == true {
                #expect(run.status == 1, "\(name) should be rejected: \(run.stdout)")
                #expect(run.stderr.hasPrefix("rejected: "), "\(name): \(run.stderr)")
            } else {
                #expect(run.status == 0, "\(name): \(run.stderr)")
                let got = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8))
                #expect(same(got, v["expected"]), "\(name): got \(run.stdout), expected \(v["expected"]!)")
            }
        }
    }

    @Test func badInputIsAUsageErrorThatSaysWhat() throws {
        let run = try vaktpost(["decode", "bthome", "--mac", "54:48:E6:8F:80:A5", "--key", "abc", "40"])
        #expect(run.status == 64)
        #expect(run.stderr.contains("--key must be 32 hex digits"))
    }
}

@Suite struct ScanCLITests {
    @Test func scanningACaptureListsDevicesWithTheirSensorsAndDecodes() throws {
        let run = try vaktpost(["scan", "--ble", "--replay", repositoryRoot + "/Tests/Fixtures/ble/night-monitor.btsnoop",
                                "--config", repositoryRoot + "/deploy/vaktpost.example.toml", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let devices = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [[String: Any]])
        #expect(devices.map { $0["address"] as? String } == ["3C:2E:F5:12:34:56", "3C:2E:F5:AB:CD:EF", "5A:11:22:33:44:55"])
        #expect(devices.map { $0["sensor"] as? String } == ["front-door", "fall", nil])
        #expect(devices[0]["seen"] as? Int == 3)
        #expect(((devices[0]["bthome"] as? [String: Any])?["binary"] as? [String: Any])?["window"] as? Bool == false)
    }

    /// On a machine without Bluetooth the scan says why, rather than listing nothing.
    @Test func aLiveScanWithoutBluetoothSaysWhy() throws {
        let run = try vaktpost(["scan", "--ble", "--seconds", "1", "--config", repositoryRoot + "/deploy/vaktpost.example.toml", "--json"])
        if run.status == 0 { return }  // a machine with a working adapter: nothing to check here
        #expect(run.status == 1)
        #expect(run.stderr.contains("error: nothing heard: "))
    }

    @Test func scanNeedsToBeToldWhatToScan() throws {
        let run = try vaktpost(["scan"])
        #expect(run.status == 64)
        #expect(run.stderr.contains("say what to scan: --ble"))
    }
}

@Suite struct SerialCLITests {
    /// Every shared ESP3 vector through `vaktpost decode esp3`, compared with its `expect`.
    @Test func everySharedESP3VectorDecodesThroughTheCLI() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: repositoryRoot + "/../shared/testdata/esp3_vectors.json"))
        let vectors = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        #expect(vectors.count >= 24)
        for v in vectors {
            let name = v["name"] as! String
            var args = ["decode", "esp3"]
            let expect = v["expect"] as? [String: Any]
            if let eep = expect?["eep"] as? String { args += ["--eep", eep] }
            args.append(v["hex"] as! String)
            let run = try vaktpost(args)
            if v["expect_reject"] as? Bool == true {
                #expect(run.status == 1, "\(name) should have no valid frame: \(run.stdout)")
                #expect(run.stderr.hasPrefix("no valid frame"))
                continue
            }
            #expect(run.status == 0, "\(name): \(run.stderr)")
            let got = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? NSDictionary
            #expect(got == expect.map { NSDictionary(dictionary: $0) }, "\(name): got \(run.stdout)")
        }
    }

    /// A technician pairing an EnOcean contact: `scan --serial` on a receiver (here a pty) prints
    /// the telegram, with its configured sensor, and says when a telegram does not fit its eep.
    @Test func scanSerialShowsTelegramsAsTheyArrive() throws {
        var master: Int32 = 0, slave: Int32 = 0
        try #require(openpty(&master, &slave, nil, nil, nil) == 0)
        let slavePath = String(cString: ttyname(slave))
        close(slave)
        defer { close(master) }
        let dir = NSTemporaryDirectory() + "vaktpost-scan-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            [hub]
            id = "hub-1"
            [[sensors]]
            id = "front-door"
            role = "door"
            room = "front-door"
            transport = "enocean"
            sender = "01825DAB"
            eep = "D5-00-01"
            [[serial]]
            name = "usb300"
            path = "\(slavePath)"
            """.write(toFile: dir + "/c.toml", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = try vaktpostBinary()
        process.arguments = ["scan", "--serial", "--seconds", "3", "--json", "--config", dir + "/c.toml"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        usleep(1_500_000)  // past the bring-up (no one answers it here)
        let frame: [UInt8] = [0x55, 0x00, 0x07, 0x07, 0x01, 0x7A, 0xD5, 0x08, 0x01, 0x82, 0x5D, 0xAB, 0x00, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0x36, 0x00, 0x53]
        // The same sender's rocker press: not what its eep reads, so the agent would refuse it.
        let rocker: [UInt8] = [0x55, 0x00, 0x07, 0x07, 0x01, 0x7A, 0xF6, 0x50, 0x01, 0x82, 0x5D, 0xAB, 0x30, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0x36, 0x00, 0xEE]
        _ = (frame + rocker).withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let heard = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        #expect(heard.count == 2)
        #expect(heard.first?["sensor"] as? String == "front-door")
        #expect(heard.first?["receiver"] as? String == "usb300")
        #expect((heard.first?["values"] as? [String: Any])?["CO"] as? Int == 0)  // open
        #expect(heard.first?["refused"] == nil)
        #expect(heard.last?["refused"] as? String == "a rocker switch (RPS, F6) telegram does not fit its eep D5-00-01")
    }
}
