import Dispatch
import Synchronization
import Uplink
import VaktpostPosix

/// An alarm's request sent a second time, on a new connection of its own, when the first has had
/// no answer for a moment. The connection the first went out on may have died without a word (the
/// hub's 4G router reconnected with a new address, a NAT mapping expired), or lead to a platform
/// node that hangs. Without the second request the alarm waits until the dead connection is given
/// up (`HTTPClient.unacknowledgedLimit`, 5 s), or, where TCP still answers, for the whole attempt
/// (`DeliveryLanes.alarmAttempt`, 10 s), and then for the backoff.
///
/// Whichever answers first is the answer; the other is given up (within a second: libcurl's
/// progress calls). Safe because the platform takes an alarm once by its event id (docs/uplink.md).
/// Only alarms: they are rare, so a second connection now and then costs a TLS handshake and a
/// few kilobytes; the bulk lane's batches can wait for a dead connection to be found.
final class AlarmHedge: Sendable {
    struct Request: Sendable {
        var url: String
        var headers: [String]
        var body: [UInt8]
    }

    /// How a request ended: the platform's answer (whatever its status), or why there was none.
    typealias Ending = Result<HTTPResponse, CurlError>

    private struct State {
        var job = 0
        var request: Request?
        var due = ContinuousClock.now
        /// The first request has ended, either way: a second one not yet begun never begins.
        var firstEnded = false
        /// The first request was answered: a second one in flight is given up.
        var firstAnswered = false
        /// The lane gave the try up (`giveUp`): the second is given up too, and not waited for.
        var givenUp = false
        /// The job the second request is running for, nil when none runs.
        var running: Int?
        var second: Ending?
        /// The connections of the first request's client and of the second's: the request
        /// answered second is cut off at once, so that neither thread waits for libcurl's next
        /// progress call (about a second) to give it up.
        var firstCutter: ConnectionCutter?
        var secondCutter: ConnectionCutter?
    }

    private let state = Mutex(State())
    private let secondEnded = DispatchSemaphore(value: 0)
    let loop = BackgroundLoop(label: "vaktpost.uplink.alarm-again")
    private let tls: TLSSettings

    init(tls: TLSSettings) { self.tls = tls }

    func start() { loop.start { [self] in run() } }

    /// The second request of the current job was answered: the first is given up.
    var answeredAgain: Bool {
        state.withLock { s in
            if case .success = s.second { return true }
            return false
        }
    }

    /// When to send again: twice the slowest of the platform's recent answers to an alarm
    /// (`HTTPResponse.answeredIn`: its own time and a round trip, not the connecting, which a
    /// second request pays for on a busy hub), and never sooner than 1 s (a mobile link's round
    /// trip, a busy platform's commit) nor later than 4 s (sooner than the 5 s after which a
    /// dead connection is given up, or the second request would seldom be first). A platform
    /// that has been slow to answer is given longer, so it is not sent every alarm twice.
    static func delay(recentAnswers: [Duration]) -> Duration {
        let slowest = recentAnswers.max() ?? .zero
        return min(max(slowest * 2, .seconds(1)), .seconds(4))
    }

    /// The lane gave its try of the current job up (`DeliveryLanes.watchTry`): the second request,
    /// running or not yet begun, is given up too (cut off at once), and `send` does not wait for it.
    func giveUp() {
        state.withLock { s in
            s.givenUp = true
            if s.running == s.job { s.secondCutter?.cut() }
        }
    }

    /// What `send` came to.
    struct Sent {
        var response: HTTPResponse
        /// Set when the answer came to the second request, begun this long after the first.
        var sentAgainAfter: Duration?
    }

    /// Sends `request` on `client` (which gives up when `answeredAgain`), and once more on a
    /// new connection if the first has no answer after `delay`. Blocking, on the alarm lane.
    /// When neither is answered, the first's error is thrown (the lane reports it, deduplicated,
    /// as any failed attempt; a second failing as well says nothing more).
    func send(_ request: Request, on client: HTTPClient, after delay: Duration) throws(CurlError) -> Sent {
        let clock = ContinuousClock()
        let begun = clock.now
        while secondEnded.wait(timeout: .now()) == .success {}  // left by seconds nobody waited for
        let job = state.withLock { s in
            s.job += 1
            s.request = request
            s.due = begun + delay
            s.firstEnded = false
            s.firstAnswered = false
            s.givenUp = false
            s.second = nil
            s.firstCutter = client.cutter
            return s.job
        }
        loop.wake()
        let first: Ending
        do { first = .success(try client.send("POST", request.url, headers: request.headers, body: request.body)) } catch { first = .failure(error) }
        let (second, running) = state.withLock { s in
            s.firstEnded = true
            if case .success = first {
                s.firstAnswered = true
                // Under the lock: the second's thread cannot have begun another job's request.
                if s.running == job { s.secondCutter?.cut() }
            }
            return (s.second, s.running == job)
        }
        let error: CurlError
        switch first {
        case .success(let response): return Sent(response: response, sentAgainAfter: nil)
        case .failure(let e): error = e
        }
        if case .success(let response) = second { return Sent(response: response, sentAgainAfter: delay) }
        if case .failure = second { throw error }
        guard running else { throw error }
        // The first failed while the second is on its way: that is the best chance now (its own
        // connection, begun later), so it is waited for rather than given up.
        while !loop.isStopped {
            _ = secondEnded.wait(timeout: .now() + .milliseconds(100))
            switch state.withLock({ $0.second }) {
            case .success(let response): return Sent(response: response, sentAgainAfter: delay)
            case .failure: throw error
            case nil: if state.withLock({ $0.givenUp }) { throw error }
            }
        }
        throw error
    }

    /// The second requests' own thread: waits for a job's moment, sends it unless the first has
    /// ended by then, and records its ending. Its libcurl handle is made at the first need.
    private func run() {
        var client: HTTPClient?
        let clock = ContinuousClock()
        while !loop.isStopped {
            let waiting = state.withLock { s -> (job: Int, request: Request, due: ContinuousClock.Instant)? in
                guard let request = s.request, !s.firstEnded, s.running == nil, s.second == nil else { return nil }
                return (s.job, request, s.due)
            }
            guard let waiting else {
                loop.sleep(.seconds(60))  // `send` wakes it
                continue
            }
            if clock.now < waiting.due {
                loop.sleep(waiting.due - clock.now)
                continue  // look again: the first may have ended, or a new job begun
            }
            let go = state.withLock { s in
                guard s.job == waiting.job, !s.firstEnded, !s.givenUp else { return false }
                s.running = waiting.job
                return true
            }
            guard go else { continue }
            if client == nil {
                client = try? HTTPClient(tls: tls, abandon: { [self] in
                    loop.isStopped || state.withLock { s in s.running != s.job || s.firstAnswered || s.givenUp }
                })
                state.withLock { $0.secondCutter = client?.cutter }
            }
            let ending: Ending
            if let client {
                do { ending = .success(try client.send("POST", waiting.request.url, headers: waiting.request.headers, body: waiting.request.body, fresh: true)) }
                catch { ending = .failure(error) }
            } else {
                ending = .failure(CurlError(code: 2, message: "libcurl could not make a second handle"))
            }
            state.withLock { s in
                s.running = nil
                guard s.job == waiting.job else { return }
                s.second = ending
                // Under the lock: while the first has not ended, the lane is still in this job.
                if case .success = ending, !s.firstEnded { s.firstCutter?.cut() }
            }
            secondEnded.signal()
        }
    }
}
