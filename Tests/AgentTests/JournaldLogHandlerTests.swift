import Logging
import Testing
@testable import Agent
import VaktpostCore

@Suite struct JournaldLogHandlerTests {
    let now = RFC3339.parse("2026-03-29T01:20:00.250Z")!.time

    @Test(arguments: [
        (Logger.Level.critical, 2), (.error, 3), (.warning, 4), (.notice, 5), (.info, 6), (.debug, 7), (.trace, 7),
    ])
    func underSystemdEachLineCarriesItsSyslogPriority(level: Logger.Level, priority: Int) {
        let handler = JournaldLogHandler(label: "vaktpost", journal: true)
        #expect(handler.render(level: level, message: "scan restarted", metadata: nil, now: now) == "<\(priority)>vaktpost: scan restarted\n")
    }

    @Test func atATerminalLinesCarryTimeAndLevelInWords() {
        var handler = JournaldLogHandler(label: "vaktpost", journal: false)
        handler[metadataKey: "sensor"] = "bed"
        let line = handler.render(level: .warning, message: "silent", metadata: ["room": "bedroom", "reason": "no frames"], now: now)
        #expect(line == "2026-03-29T01:20:00.250+00:00 warning vaktpost: silent reason=\"no frames\" room=bedroom sensor=bed\n")
    }

    @Test func aNewlineInAMessageNeverSplitsAJournalEntry() {
        let handler = JournaldLogHandler(label: "v", journal: true)
        #expect(handler.render(level: .error, message: "a\nb", metadata: ["k": "x\ny"], now: now) == "<3>v: a | b k=x | y\n")
    }
}
