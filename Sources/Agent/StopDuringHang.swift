import VaktpostCore

/// What a stop does while the outbox is busy with a write that hangs (`HubDaemon.watchTheStop`
/// asks it once a second). systemd kills a stop that outlasts `TimeoutStopSec` (10 s in the
/// unit), and the events still waiting in memory for the write would be left to their copy on
/// tmpfs (`MemoryCopy`), or lost if it could not be made: the write itself returns first (a thread
/// inside a write cannot die), the rest is never written. So while the write hangs, the stop asks
/// systemd for more time (`EXTEND_TIMEOUT_USEC`), up to `limit`: a card that answers again within
/// it stores everything where it belongs. Past it the stop no longer asks and says where what
/// waits will be: a write that never returns must not keep the agent from ever being restarted,
/// should the kill be one that ends the wait.
struct StopDuringHang {
    /// How long, from the outbox's stop, systemd is asked to wait for a write that hangs: a USB
    /// disk the kernel retries 30 s at a time, an SD card's firmware busy for a minute.
    static let limit = Duration.seconds(180)
    /// Each request gives this much from when it is sent; the stop asks again every second.
    static let perRequest = Duration.seconds(5)

    var limit = StopDuringHang.limit
    var said = false
    var gaveUp = false

    enum Step: Equatable {
        /// For systemd's notify socket.
        case notify(String)
        /// For the journal, critical.
        case say(String)
    }

    /// `running`: how long the write has run; `stopping`: since the outbox's stop began;
    /// `events`: how many wait for the write; `copy`: where they are copied, if the copy is
    /// up to date.
    mutating func waiting(write running: Duration, stopping: Duration, events: Int, outbox path: String, copy: String?) -> [Step] {
        if stopping < limit {
            var steps = [Step.notify("EXTEND_TIMEOUT_USEC=\(Self.perRequest.nanoseconds / 1000)")]
            if !said {
                said = true
                steps.append(.say("the stop waits for a write of the outbox \(path) that has not returned for \(DurationText.format(running)) (the disk hangs): "
                    + "the \(events) events waiting for it are stored when it returns; systemd is asked to wait up to \(DurationText.format(limit)) for it"))
            }
            return steps
        }
        guard !gaveUp else { return [] }
        gaveUp = true
        let fate = copy.map { "If the agent is killed now, the \(events) events waiting for the write are in the copy \($0), which the next start takes in (do not power off the hub before: /run is memory). " }
            ?? "If the agent is killed now, the \(events) events waiting for the write are LOST WITH THIS STOP (no copy of them could be made). "
        return [.say("a write of the outbox \(path) has not returned for \(DurationText.format(running)): the stop no longer asks systemd to wait. " + fate
            + "Look for I/O errors and timeouts in the kernel log (dmesg); then replace the SD card")]
    }
}
