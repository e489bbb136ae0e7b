@testable import Agent
import Testing

/// A stop while a write of the outbox hangs: systemd is asked for time, so that what waits for
/// the write is not killed with the agent, but not for ever.
struct StopDuringHangTests {
    @Test func asksForTimeWhileTheWriteHangsThenSaysWhatWouldBeLost() {
        var hang = StopDuringHang(limit: .seconds(10))
        let first = hang.waiting(write: .seconds(3), stopping: .seconds(1), events: 12, outbox: "/var/lib/vaktpost/outbox.sqlite", copy: nil)
        #expect(first.first == .notify("EXTEND_TIMEOUT_USEC=5000000"), "5 s from now, asked again each second")
        guard first.count == 2, case .say(let line) = first[1] else { Issue.record("\(first)"); return }
        #expect(line.contains("12 events") && line.contains("/var/lib/vaktpost/outbox.sqlite") && line.contains("3s"), "\(line)")
        #expect(hang.waiting(write: .seconds(4), stopping: .seconds(2), events: 13, outbox: "o", copy: nil) == [.notify("EXTEND_TIMEOUT_USEC=5000000")], "said once")
        let past = hang.waiting(write: .seconds(12), stopping: .seconds(10), events: 14, outbox: "o", copy: nil)
        guard past.count == 1, case .say(let lost) = past[0] else { Issue.record("\(past)"); return }
        #expect(lost.contains("14 events") && lost.contains("LOST WITH THIS STOP"), "no more time asked; said what would be lost: \(lost)")
        #expect(hang.waiting(write: .seconds(13), stopping: .seconds(11), events: 14, outbox: "o", copy: nil) == [], "said once")
    }

    @Test func pastTheLimitItSaysWhereTheCopyOfWhatWaitsIs() {
        var hang = StopDuringHang(limit: .seconds(10))
        _ = hang.waiting(write: .seconds(3), stopping: .seconds(1), events: 12, outbox: "o", copy: "/run/vaktpost/outbox-memory-copy.sqlite")
        let past = hang.waiting(write: .seconds(12), stopping: .seconds(10), events: 14, outbox: "o", copy: "/run/vaktpost/outbox-memory-copy.sqlite")
        guard past.count == 1, case .say(let line) = past[0] else { Issue.record("\(past)"); return }
        #expect(line.contains("14 events") && line.contains("/run/vaktpost/outbox-memory-copy.sqlite") && !line.contains("LOST"), "\(line)")
    }

    @Test func theLimitCoversAUSBDisksRetriesAndEachRequestOutlastsASecond() {
        #expect(StopDuringHang.limit >= .seconds(120))
        #expect(StopDuringHang.perRequest > .seconds(1), "asked again every second: no gap in which systemd may kill")
    }
}
