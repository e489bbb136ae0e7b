#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import Agent
import VaktpostCore
import VaktpostPosix

@Suite struct ConfigFileTests {
    @Test func theShippedExampleIsValidApartFromTheHubsOwnFiles() throws {
        let report = ConfigFile.check(path: repositoryRoot + "/deploy/vaktpost.example.toml", checkFiles: false)
        #expect(report.report.diagnostics.isEmpty, "\(report.report.diagnostics.map { $0.rendered(file: "example") })")
        let config = try #require(report.config)
        #expect(config.sensors.map(\.role) == [.bed, .door, .fall])
        #expect(report.timeZone?.identifier == "Europe/Oslo")
        // On a machine without the hub's certificates the full check says exactly which files are missing.
        let full = ConfigFile.check(path: repositoryRoot + "/deploy/vaktpost.example.toml")
        #expect(full.report.errors.allSatisfy { $0.message.contains("does not exist") && $0.location != nil })
    }

    @Test func aMissingFileSaysWhereTheExampleIs() {
        let report = ConfigFile.check(path: "/nonexistent/vaktpost.toml")
        #expect(!report.isValid)
        #expect(report.report.errors.first?.message.contains("No such file") == true)
        #expect(report.report.errors.first?.hint?.contains("deploy/vaktpost.example.toml") == true)
    }

    @Test func notUTF8IsAnError() throws {
        try withTemporaryDirectory { dir in
            try Files.writeAtomically(dir + "/bad.toml", [0x5B, 0xFF, 0xFE, 0x5D])
            let report = ConfigFile.check(path: dir + "/bad.toml")
            #expect(report.report.errors.first?.message.contains("not UTF-8") == true)
        }
    }

    @Test func aMisspelledZoneIsReportedAtItsLineEvenBesideOtherErrors() throws {
        try withTemporaryDirectory { dir in
            try write("[hub]\nid = \"h\"\ntimezone = \"Europe/Olso\"\n[[sensors]]\nid = \"bed\"\nrole = \"bedd\"\nroom = \"bedroom\"\n", to: dir + "/c.toml")
            let report = ConfigFile.check(path: dir + "/c.toml", scope: .replay)
            let lines = report.report.errors.compactMap { $0.location?.line }
            #expect(lines == [3, 6], "\(report.report.errors)")
        }
    }

    @Test func certificateFilesAndKeyPermissionsAreChecked() throws {
        try withTemporaryDirectory { dir in
            try write("ca", to: dir + "/ca.pem")
            try write("key", to: dir + "/hub.key", mode: 0o644)
            let config = """
                [hub]
                id = "hub-1"
                [platform]
                url = "https://alarm.example.no"
                ca_file = "\(dir)/ca.pem"
                client_cert = "\(dir)/missing.pem"
                client_key = "\(dir)/hub.key"
                """
            try write(config, to: dir + "/c.toml")
            let report = ConfigFile.check(path: dir + "/c.toml")
            #expect(!report.isValid)
            #expect(report.report.errors.map(\.message) == ["platform.client_cert: \(dir)/missing.pem does not exist"])
            #expect(report.report.errors.first?.location?.line == 6)
            let keyWarning = report.report.warnings.first { $0.message.contains("private key") }
            #expect(keyWarning?.hint == "chown vaktpost:vaktpost \(dir)/hub.key && chmod 600 \(dir)/hub.key")
        }
    }

    @Test func aWorldReadableConfigWithBTHomeKeysIsWarnedAbout() throws {
        try withTemporaryDirectory { dir in
            let config = """
                [hub]
                id = "hub-1"
                [[sensors]]
                id = "door"
                role = "door"
                room = "front-door"
                transport = "ble"
                address = "3C:2E:F5:12:34:56"
                field = "window"
                bthome_key = "231d39c1d7cc1ab1aee224cd096db932"
                """
            try write(config, to: dir + "/c.toml", mode: 0o644)
            let open = ConfigFile.check(path: dir + "/c.toml")
            #expect(open.isValid)
            #expect(open.report.warnings.contains { $0.message.contains("every user on the hub can read it") })
            chmod(dir + "/c.toml", 0o640)
            let closed = ConfigFile.check(path: dir + "/c.toml")
            #expect(!closed.report.warnings.contains { $0.message.contains("every user") })
        }
    }

    @Test func textAndJSONOutput() throws {
        let report = ConfigFile.check(path: repositoryRoot + "/deploy/vaktpost.example.toml", checkFiles: false)
        let now = CivilDateTime(year: 2026, month: 3, day: 29, hour: 1, minute: 20).asUTC
        let text = ConfigCheckOutput.text(report, now: now)
        #expect(text.hasPrefix("\(report.path): OK (3 sensors, 3 rules)\n"))
        #expect(text.contains("time zone Europe/Oslo (local time 2026-03-29T03:20:00+02:00)"))
        #expect(text.contains("night-bed        not-back-in-bed bed 22:00-07:00 after 30m"))
        let json = ConfigCheckOutput.json(report)
        #expect(json["valid"] == .bool(true))
        #expect(json["errors"] == .array([]))
    }
}
