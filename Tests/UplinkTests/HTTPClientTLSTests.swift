import Foundation
import Synchronization
import TestSupport
import Testing
@testable import Uplink
import VaktpostCore

func json(_ r: HTTPResponse) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
}

let pki = testPKI
let hub1 = TLSSettings(caFile: "\(pki)/ca.pem", clientCert: "\(pki)/hub-0001.pem", clientKey: "\(pki)/hub-0001.key", connectTimeout: .seconds(5), totalTimeout: .seconds(10))

extension ReceiverProcess {
    func url(_ path: String = "/v1/whoami", host: String = "localhost") -> String { "https://\(host):\(port)\(path)" }
}

/// The client against the reference receiver over real TLS on loopback.
@Suite(.serialized) struct HTTPClientTLSTests {
    @Test func mutualTLSPresentsTheHubsIdentityAndReusesTheConnection() throws {
        let server = try ReceiverProcess()
        let client = try HTTPClient(tls: hub1)
        let first = try client.send("GET", server.url(), headers: ["Idempotency-Key: \"abc\""])
        #expect(first.status == 200)
        let seen = try json(first)
        #expect(seen["certificateNames"] as? [String] == ["hub-0001"])
        #expect(seen["idempotencyKey"] as? String == "\"abc\"")
        #expect(first.header("content-type") == "application/json")
        let second = try json(try client.send("GET", server.url()))
        #expect(second["peer"] as? String == seen["peer"] as? String, "the second request should reuse the TLS connection")
    }

    /// A platform may close a kept-alive connection as a request goes out on it (a load balancer's
    /// keep-alive timeout, a GOAWAY, a restart). The request caught by it used to fail (curl 16 or
    /// 92) and wait out the lane's backoff: an alarm 250 ms late. It is now sent again at once on
    /// a new connection. The receiver closes the connection under every 100th request here.
    @Test(arguments: [[], ["--http1-only"]])
    func aConnectionClosedUnderARequestIsReplacedWithoutAnError(receiverArguments: [String]) throws {
        let server = try ReceiverProcess(arguments: ["--drop-every", "100"] + receiverArguments)
        let client = try HTTPClient(tls: hub1)
        var peers: [String] = []
        for _ in 0..<450 {
            let r = try client.send("GET", server.url())
            #expect(r.status == 200)
            let peer = try json(r)["peer"] as? String ?? "?"
            if peers.last != peer { peers.append(peer) }
        }
        #expect(peers.count == 5, "450 requests, the connection closed under the 100th, 200th, 300th and 400th: \(peers)")
    }

    /// libcurl 7.88 resets every HTTP/2 stream whose end arrives after the last body byte, and
    /// swift-nio-http2 answers 200 resets in 30 s with GOAWAY (ENHANCE_YOUR_CALM): a new
    /// connection, and a request caught in flight, every ~200 requests. The receiver ends the
    /// stream on the last DATA frame (EndStreamOnLastData), so one connection carries them all.
    @Test func oneConnectionCarriesHundredsOfRequests() throws {
        let server = try ReceiverProcess()
        let client = try HTTPClient(tls: hub1)
        var peers: Set<String> = []
        for _ in 0..<450 {
            let r = try client.send("GET", server.url())
            #expect(r.status == 200)
            #expect(r.httpVersion == "2")
            peers.insert(try json(r)["peer"] as? String ?? "?")
        }
        #expect(peers.count == 1, "the receiver closed the connection: \(peers.sorted())")
    }

    /// libcurl keeps an HTTP/2 connection whose stream timed out, and used it for every retry:
    /// when the connection had died silently (a 4G router's new address, an expired NAT mapping),
    /// an alarm never arrived until TCP gave up. After a failure the next request connects anew.
    @Test func afterAFailedRequestTheNextOneConnectsAnew() throws {
        let server = try ReceiverProcess()
        var tls = hub1
        tls.totalTimeout = .milliseconds(700)
        let client = try HTTPClient(tls: tls)
        let before = try json(try client.send("GET", server.url()))["peer"] as? String
        try server.faults(["delayMs": 3000])
        #expect(throws: CurlError.self) { try client.send("GET", server.url()) }
        try server.faults(["delayMs": 0])
        let after = try client.send("GET", server.url())
        #expect(after.httpVersion == "2")
        #expect(try json(after)["peer"] as? String != before, "the request after a timeout went out on the old connection")
    }

    /// A kept connection fails within `unacknowledgedLimit` when nothing acknowledges what the
    /// hub sends, and is probed while idle. (The loss of a connection's packets itself is
    /// exercised with iptables in `Benchmarks/reliability.py faults`, scenario dead-connections.)
    @Test func aKeptConnectionHasADeadPeerLimitAndKeepalive() throws {
        let server = try ReceiverProcess()
        let client = try HTTPClient(tls: hub1)
        _ = try client.send("GET", server.url())
        let options = try #require(client.keptConnectionOptions())
        #expect(options.userTimeoutMs == Int(HTTPClient.unacknowledgedLimitMs))
        #expect(options.keepalive)
    }

    /// On a slow link one retransmission timeout can pass 5 s: the limit is three of them there,
    /// so that one lost segment does not end a live connection, and a minute at most.
    @Test func theDeadPeerLimitGrowsWithTheRoundTrips() {
        #expect(HTTPClient.unacknowledgedLimitMs(rtoMicros: 0) == 5000)
        #expect(HTTPClient.unacknowledgedLimitMs(rtoMicros: 200_000) == 5000, "Linux's smallest timeout: loopback, a good link")
        #expect(HTTPClient.unacknowledgedLimitMs(rtoMicros: 1_500_000) == 5000)
        #expect(HTTPClient.unacknowledgedLimitMs(rtoMicros: 4_000_000) == 12_000, "3G under load")
        #expect(HTTPClient.unacknowledgedLimitMs(rtoMicros: 40_000_000) == 60_000)
    }

    /// The round trips change with the load: a kept connection's limit is fitted again by the
    /// next request on it (libcurl's progress calls), not left as its connect set it.
    @Test func aKeptConnectionsLimitIsFittedAgainByTheNextRequest() throws {
        let server = try ReceiverProcess()
        let client = try HTTPClient(tls: hub1, abandon: { false })
        _ = try client.send("GET", server.url())
        for fd in Self.sockets(toPort: server.port) {
            var ms: UInt32 = 1234
            #expect(setsockopt(fd, Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, &ms, socklen_t(MemoryLayout<UInt32>.size)) == 0)
        }
        #expect(Self.userTimeoutsOfSockets(toPort: server.port) == [1234])
        _ = try client.send("GET", server.url())
        #expect(client.reusedConnection())
        #expect(Self.userTimeoutsOfSockets(toPort: server.port) == [Int(HTTPClient.unacknowledgedLimitMs)])
    }

    /// The limit is on a new connection before its first request goes out, not only once a
    /// request came back: a path that dies under the first request fails it within the limit,
    /// not the lane's timeout.
    @Test func aNewConnectionHasTheDeadPeerLimitDuringItsFirstRequest() throws {
        let server = try ReceiverProcess()
        try server.faults(["delayMs": 3000])
        let answered = Mutex<Int?>(nil)
        let request = Thread { [url = server.url()] in
            let status = (try? HTTPClient(tls: hub1).send("GET", url))?.status ?? -1
            answered.withLock { $0 = status }
        }
        request.start()
        var limits: [Int] = []
        for _ in 0..<250 where limits.isEmpty {
            usleep(10_000)
            limits = Self.userTimeoutsOfSockets(toPort: server.port)
        }
        #expect(limits == [Int(HTTPClient.unacknowledgedLimitMs)], "TCP_USER_TIMEOUT (ms) of the request's socket while it waits: \(limits)")
        #expect(answered.withLock { $0 } == nil, "seen while the request was still waiting")
        #expect(waitUntil(5) { answered.withLock { $0 } == 200 })
    }

    /// How long the platform took to answer, without the connecting and the TLS handshake: what
    /// an alarm sent again on a new connection (which pays for a handshake) is timed by.
    @Test func theAnswerTimeLeavesOutTheConnecting() throws {
        let server = try ReceiverProcess()
        try server.faults(["delayMs": 300])
        let clock = ContinuousClock()
        var answer: HTTPResponse?
        let took = try clock.measure { answer = try HTTPClient(tls: hub1).send("GET", server.url(), fresh: true) }
        let answeredIn = try #require(answer?.answeredIn)
        #expect(answeredIn >= .milliseconds(300) && answeredIn < took, "answered in \(answeredIn) of \(took)")
        try server.faults(["delayMs": 0])
        let quick = try HTTPClient(tls: hub1).send("GET", server.url(), fresh: true).answeredIn
        #expect(quick < .milliseconds(250), "\(quick)")
    }

    /// Another thread can end a request at once by cutting the client's connections: one kept
    /// connection here leaves the request unanswered (the receiver's `hangKept`), and nothing
    /// but the 10 s timeout, or `abandon` at libcurl's next progress call, would end it.
    /// Not given up (`abandon` says no), the request goes again on a new connection, answered.
    @Test func aCutConnectionEndsTheRequestOnItAtOnce() throws {
        let server = try ReceiverProcess()
        try server.faults(["hangKept": true])
        let client = try HTTPClient(tls: hub1)
        let first = try json(try client.send("GET", server.url()))["peer"] as? String
        let cutter = client.cutter
        let cut = Thread { usleep(300_000); cutter.cut() }
        cut.start()
        let clock = ContinuousClock()
        var answer: HTTPResponse?
        let took = try clock.measure { answer = try client.send("GET", server.url()) }
        #expect(answer?.status == 200)
        #expect(try answer.map(json)?["peer"] as? String != first, "sent again on a new connection")
        #expect(took < .seconds(2), "ended by the cut at 0.3 s, not by the timeout: \(took)")
    }

    /// Given up (`abandon` says so before the cut), the cut request ends with an error and is
    /// not sent again: its answer is coming another way (`AlarmHedge`). (libcurl 7.88 asks
    /// `abandon` as it meets the cut socket and reports curl 42; should a version report the
    /// broken connection first, `send` still does not send it again.)
    @Test func aCutRequestThatIsGivenUpIsNotSentAgain() throws {
        let server = try ReceiverProcess()
        try server.faults(["hangKept": true])
        let givenUp = Atomic<Bool>(false)
        let client = try HTTPClient(tls: hub1, abandon: { givenUp.load(ordering: .acquiring) })
        _ = try client.send("GET", server.url())
        let cutter = client.cutter
        let cut = Thread {
            usleep(300_000)
            givenUp.store(true, ordering: .releasing)
            cutter.cut()
        }
        cut.start()
        let clock = ContinuousClock()
        let took = clock.measure { #expect(throws: CurlError.self) { try client.send("GET", server.url()) } }
        #expect(took < .seconds(2), "\(took)")
        let faults = try #require(try server.admin("GET", "/api/faults") as? [String: Any])
        #expect(faults["hung"] as? Int == 1, "one request left unanswered, none sent again: \(faults)")
    }

    /// TCP_USER_TIMEOUT of every TCP socket of this process connected to `port` on loopback and
    /// past its TLS handshake (the limit is set then; before, it reads 0 and is not counted).
    /// This process's sockets connected to `port` on IPv4.
    static func sockets(toPort port: Int) -> [Int32] {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.compactMap(Int32.init) ?? []
        return fds.filter { fd in
            var peer = sockaddr_in()
            var size = socklen_t(MemoryLayout<sockaddr_in>.size)
            let named = withUnsafeMutablePointer(to: &peer) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &size) } }
            return named == 0 && peer.sin_family == sa_family_t(AF_INET) && Int(UInt16(bigEndian: peer.sin_port)) == port
        }
    }

    static func userTimeoutsOfSockets(toPort port: Int) -> [Int] {
        sockets(toPort: port).compactMap { fd in
            var ms: UInt32 = 0
            var length = socklen_t(MemoryLayout<UInt32>.size)
            guard getsockopt(fd, Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, &ms, &length) == 0, ms > 0 else { return nil }
            return Int(ms)
        }
    }

    @Test func http2IsUsedWhenThePlatformOffersIt() throws {
        let h2 = try ReceiverProcess()
        let r = try HTTPClient(tls: hub1).send("GET", h2.url())
        #expect(r.httpVersion == "2")
        #expect(try json(r)["httpVersion"] as? String == "2")
        let h1 = try ReceiverProcess(arguments: ["--http1-only"])
        let r1 = try HTTPClient(tls: hub1).send("GET", h1.url())
        #expect(r1.httpVersion == "1.1")
        #expect(r1.status == 200)
    }

    @Test func aServerCertificateFromAnotherCAIsRefused() throws {
        let server = try ReceiverProcess()
        var tls = hub1
        tls.caFile = "\(pki)/other-ca.pem"
        #expect {
            try HTTPClient(tls: tls).send("GET", server.url())
        } throws: { error in
            (error as? CurlError)?.code == 60 && (error as? CurlError)?.hint.contains("ca_file") == true
        }
    }

    @Test func anExpiredServerCertificateIsRefused() throws {
        let server = try ReceiverProcess(cert: "expired-server")
        #expect { try HTTPClient(tls: hub1).send("GET", server.url()) } throws: { ($0 as? CurlError)?.code == 60 }
    }

    @Test func aCertificateForAnotherHostNameIsRefused() throws {
        let server = try ReceiverProcess(cert: "wrong-host-server")
        #expect { try HTTPClient(tls: hub1).send("GET", server.url()) } throws: { ($0 as? CurlError)?.code == 60 }
    }

    @Test func pinsMustMatchThePlatformsKey() throws {
        let server = try ReceiverProcess()
        let right = try String(contentsOfFile: "\(pki)/server.pin", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let wrong = try String(contentsOfFile: "\(pki)/other.pin", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        var tls = hub1
        tls.pins = [wrong]
        #expect { try HTTPClient(tls: tls).send("GET", server.url()) } throws: { error in
            (error as? CurlError)?.code == 90 && (error as? CurlError)?.hint.contains("pins") == true
        }
        tls.pins = [wrong, right]  // a backup pin beside the current one, as a rotation needs
        #expect(try HTTPClient(tls: tls).send("GET", server.url()).status == 200)
    }

    @Test func withoutItsCertificateTheHubIsTurnedAway() throws {
        let server = try ReceiverProcess()
        var tls = hub1
        tls.clientCert = nil
        tls.clientKey = nil
        // The TLS handshake succeeds; the platform answers 401 with a problem document saying why.
        let r = try HTTPClient(tls: tls).send("GET", server.url("/v1/hubs/hub-0001/config"))
        #expect(r.status == 401)
        #expect(DeliveryVerdict(status: r.status) == .unauthorized)
        #expect(try json(r)["detail"] as? String == "no client certificate: the hub must present its own certificate (client_cert, client_key)")
    }

    @Test func anotherHubsCertificateIsRefusedByThePlatform() throws {
        let server = try ReceiverProcess()
        var tls = hub1
        tls.clientCert = "\(pki)/hub-0002.pem"
        tls.clientKey = "\(pki)/hub-0002.key"
        let r = try HTTPClient(tls: tls).send("POST", server.url("/v1/hubs/hub-0001/heartbeat"), body: Array("{}".utf8))
        #expect(r.status == 403)
        #expect(r.header("content-type") == "application/problem+json")
        #expect((try json(r)["detail"] as? String)?.contains("for hub-0002, not for hub hub-0001") == true)
    }

    @Test func busyAnswersCarryRetryAfter() throws {
        let server = try ReceiverProcess(arguments: ["--down-for", "60", "--retry-after", "7"])
        let r = try HTTPClient(tls: hub1).send("POST", server.url("/v1/hubs/hub-0001/heartbeat"), body: [])
        #expect(r.status == 503)
        #expect(DeliveryVerdict(status: r.status) == .retry)
        #expect(RetryAfter.parse(try #require(r.header("Retry-After")), now: WallTime(secondsSinceEpoch: 0)) == .seconds(7))
    }

    @Test func nothingListeningIsAClearError() throws {
        let client = try HTTPClient(tls: hub1)
        #expect { try client.send("GET", "https://127.0.0.1:1/x") } throws: { error in
            (error as? CurlError)?.code == 7 && "\(error)".contains("nothing answers")
        }
    }
}
