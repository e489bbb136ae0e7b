import Testing
import VaktpostCore

@Suite struct PlatformExchangeTests {
    let t0 = WallTime(secondsSinceEpoch: 1_795_000_000)

    @Test func followingEndsWhenAnOperatorTakesTheAlarmAndEscalatesOnceWhenNot() {
        #expect(AlarmFollowUp.decide(.acknowledged, acceptedAt: t0, now: t0 + .seconds(500), acknowledgeWithin: .seconds(60), escalated: false) == .done)
        #expect(AlarmFollowUp.decide(.closed, acceptedAt: t0, now: t0, acknowledgeWithin: .seconds(60), escalated: true) == .done)
        #expect(AlarmFollowUp.decide(.presented, acceptedAt: t0, now: t0 + .seconds(59), acknowledgeWithin: .seconds(60), escalated: false) == .keepFollowing)
        #expect(AlarmFollowUp.decide(.received, acceptedAt: t0, now: t0 + .seconds(60), acknowledgeWithin: .seconds(60), escalated: false) == .escalate(waited: .seconds(60)))
        #expect(AlarmFollowUp.decide(.received, acceptedAt: t0, now: t0 + .seconds(600), acknowledgeWithin: .seconds(60), escalated: true) == .keepFollowing)
        #expect(AlarmHandling.parse(Array("{\"eventId\":\"x\",\"status\":\"presented\"}".utf8)) == .presented)
        #expect(AlarmHandling.parse(Array("{\"status\":\"lost\"}".utf8)) == nil)
    }

    @Test func theHeartbeatReplyIsClampedToTheAllowedRange() {
        #expect(HeartbeatReply.parse(Array("{\"serverTime\":\"2026-11-24T00:00:00Z\",\"nextHeartbeatSec\":5}".utf8))?.nextInterval == .seconds(30))
        #expect(HeartbeatReply.parse(Array("{\"nextHeartbeatSec\":99999}".utf8))?.nextInterval == .seconds(3600))
        let plain = HeartbeatReply.parse(Array("{\"serverTime\":\"2026-11-24T00:00:00Z\"}".utf8))
        #expect(plain?.nextInterval == nil)
        #expect(plain?.commandsPending == false)
        #expect(HeartbeatReply.parse(Array("not json".utf8)) == nil)
    }

    @Test func commandsAreReadAndUnknownOnesKept() {
        let body = """
            {"commands":[{"commandId":"a","commandSeq":1,"kind":"test-alarm"},{"commandId":"b","commandSeq":2,"kind":"set-heartbeat","args":{"seconds":90}},
             {"commandId":"c","commandSeq":3,"kind":"reboot"},{"commandSeq":4,"kind":"diagnostics"}]}
            """
        #expect(PlatformCommand.list(Array(body.utf8)) == [
            PlatformCommand(id: "a", seq: 1, kind: .testAlarm), PlatformCommand(id: "b", seq: 2, kind: .setHeartbeat(seconds: 90)),
            PlatformCommand(id: "c", seq: 3, kind: .unknown("reboot")),
        ])
        #expect(PlatformCommand.list(Array("{}".utf8)) == nil)
    }

    func event(synced: Bool, boot: String = "b1", corrected: Bool = false) -> [UInt8] {
        Array("""
            {"eventId":"x","bootId":"\(boot)","occurredAt":"2026-11-24T01:00:00.000+01:00",\
            "clock":{"synced":\(synced),"boottimeNs":1000000000\(corrected ? ",\"corrected\":true" : "")},"data":{"a":1}}
            """.utf8)
    }

    @Test func onlyUnsyncedEventsOfThisBootAreCorrected() throws {
        let offset = t0.nanosecondsSinceEpoch - 1_000_000_000  // the event happened at t0 by the boot clock
        let (payload, at) = try #require(TimeCorrection.correct(event(synced: false), bootID: "b1", offsetNanoseconds: offset, zone: .utc))
        #expect(at == t0)
        let json = try JSONValue.parse(String(decoding: payload, as: UTF8.self))
        #expect(json["occurredAt"] == .string(RFC3339.format(t0, utcOffsetSeconds: 0, fractionDigits: 3)))
        #expect(json["clock"]?["corrected"] == .bool(true))
        #expect(json["clock"]?["synced"] == .bool(false))
        #expect(json["data"]?["uncorrectedOccurredAt"] == .string("2026-11-24T01:00:00.000+01:00"))
        #expect(json["data"]?["a"] == .int(1))
        #expect(TimeCorrection.correct(event(synced: true), bootID: "b1", offsetNanoseconds: offset, zone: .utc) == nil)
        #expect(TimeCorrection.correct(event(synced: false, boot: "b0"), bootID: "b1", offsetNanoseconds: offset, zone: .utc) == nil)
        #expect(TimeCorrection.correct(event(synced: false, corrected: true), bootID: "b1", offsetNanoseconds: offset, zone: .utc) == nil)
        // Found by fuzzing: an offset that overflows, or lands outside 2000-2200, leaves the event alone.
        #expect(TimeCorrection.correct(event(synced: false), bootID: "b1", offsetNanoseconds: Int64.max, zone: .utc) == nil)
        #expect(TimeCorrection.correct(event(synced: false), bootID: "b1", offsetNanoseconds: -5_000_000_000, zone: .utc) == nil)
    }
}
