import ArgumentParser
import HTTPTypes
import Hummingbird
import HummingbirdHTTP2
import HummingbirdTLS
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Receiver
import ServiceLifecycle
import Synchronization
import UnixSignals
import VaktpostCore
import VaktpostPosix

/// The reference response platform: docs/openapi.yaml over mutual TLS for hubs, and a plain-HTTP
/// admin port on loopback for people (the page) and for tests (the JSON API and fault switches).
@main
struct ReceiverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vaktpost-receiver",
        abstract: "Reference response platform for Vaktpost hubs: receives events over mutual TLS and shows them.",
        discussion: """
            Hub API (mutual TLS, HTTP/2 or HTTP/1.1): https://HOST:PORT/v1/hubs/{hubId}/... as in docs/openapi.yaml.
            A hub's certificate must name its hub id (CN or DNS SAN) and be signed by --client-ca.

            Admin (plain HTTP, loopback only): http://127.0.0.1:ADMIN-PORT/
              GET  /                                   the page: hubs, health, open alarms, latest events
              GET  /api/hubs, /api/arrivals[?hub=ID]   the same as JSON; every stored event in arrival order
              GET  /api/hubs/ID/events?limit=N
              POST /api/hubs/ID/alarms/EVENT/present|acknowledge|close     act as the operator
              POST /api/hubs/ID/commands  {"kind": "test-alarm|diagnostics|set-heartbeat|reload-config|reset-counter", "args": {}}
              GET  /api/hubs/ID/commands               commands and their results
              PUT  /api/hubs/ID/config                 the hub's TOML config (served with an ETag)
              PUT  /api/hubs/ID/heartbeat-interval     {"seconds": N}
              GET|POST /api/faults {"downForSec", "failRate", "delayMs", "retryAfterSec", "failStatus",
                                  "scope": "all|batches|alarms", "dropEvery", "hangKept",
                                  "breakOnType": "fall.detected" (500 to every alarm of that type),
                                  "hangOnType": "fall.detected" (no answer to any alarm of that type)}

            GET https://HOST:PORT/v1/whoami shows what the receiver sees of a client: the hub ids its
            certificate names, its address, the HTTP version.
            POST https://HOST:PORT/v1/hubs/{hubId}/events:ndjson takes hub-event/1 objects one per line,
            each stored once by eventId, for a general log forwarder that cannot send a per-request
            Idempotency-Key (the syslog-ng peer in Benchmarks/peer_syslogng.py); hubs use events:batch.
            Fault status 200 (admin API only) answers with an HTML page, as a captive portal does.
            """
    )

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port for hubs (mutual TLS); 0 picks a free one.") var port = 8443
    @Option(help: "Port for the page and the admin API (plain HTTP, always on 127.0.0.1); 0 picks a free one.") var adminPort = 8080
    @Option(help: "The platform's certificate (PEM).") var cert: String
    @Option(help: "Its private key (PEM).") var key: String
    @Option(help: "CA that signs hub certificates (PEM).") var clientCA: String
    @Option(help: "SQLite file that keeps what hubs sent.") var db = "receiver.sqlite"
    @Option(help: "Write \"HUB-PORT ADMIN-PORT\" here once listening (for scripts using port 0).") var portFile: String?
    @Option(help: "Heartbeat interval told to hubs, seconds (30-3600); by default hubs keep their own.") var heartbeatSec: Int?
    @Option(help: "Act as an operator: acknowledge every alarm this many seconds after it arrives.") var ackAfter: Double?
    @Option(help: "Days a batch's Idempotency-Key and its answer are kept (at least 1; the protocol asks for 24 hours).") var idempotencyDays = 7
    @Option(help: "Fault: answer every hub request with --fail-status for this many seconds after start.") var downFor: Double = 0
    @Option(help: "Fault: answer this share (0-1) of hub requests with --fail-status at random.") var failRate: Double = 0
    @Option(help: "Fault: wait this many milliseconds before answering each hub request.") var delay: Int = 0
    @Option(help: "Fault: send Retry-After with this many seconds on fault answers.") var retryAfter: Int?
    @Option(help: "Fault: the status of fault answers (429, 500 or 503).") var failStatus = 503
    @Option(help: "Fault: close the connection under every Nth hub request, unanswered (a load balancer's keep-alive timeout racing a request); 0: never.") var dropEvery = 0
    @Flag(help: "Fault: never answer a request on a connection that has carried one before, only a new connection's first (a connection that died without a word, a node that hangs behind a load balancer).") var hangKept = false
    @Flag(help: "Offer HTTP/1.1 only (no HTTP/2 by ALPN).") var http1Only = false

    func validate() throws {
        if let heartbeatSec, !(30...3600).contains(heartbeatSec) { throw ValidationError("--heartbeat-sec must be 30-3600") }
        guard (0...1).contains(failRate) else { throw ValidationError("--fail-rate must be between 0 and 1") }
        guard idempotencyDays >= 1 else { throw ValidationError("--idempotency-days must be at least 1 (hubs may retry a batch a day later)") }
        guard dropEvery >= 0 else { throw ValidationError("--drop-every must be 0 (never) or a count of requests") }
        guard [429, 500, 502, 503].contains(failStatus) else { throw ValidationError("--fail-status must be 429, 500, 502 or 503") }
    }

    func run() async throws {
        var logger = Logger(label: "vaktpost-receiver")
        logger.logLevel = .notice
        let now: @Sendable () -> WallTime = { WallTime(nanosecondsSinceEpoch: SystemClock.now()) }
        let store: ReceiverStore
        do { store = try ReceiverStore(path: db) } catch {
            throw ValidationError("cannot open --db \(db): \(error)")
        }
        let platform = Platform(
            store: store,
            options: .init(heartbeatSeconds: heartbeatSec, acknowledgeAfter: ackAfter.map { .milliseconds(Int64($0 * 1000)) },
                           idempotencyRetention: .seconds(Int64(idempotencyDays) * 86_400)),
            faults: Faults(downUntil: downFor > 0 ? now() + .milliseconds(Int64(downFor * 1000)) : nil, failRate: failRate,
                           delay: .milliseconds(delay), retryAfterSeconds: retryAfter, failStatus: failStatus,
                           dropEvery: dropEvery, hangKept: hangKept),
            now: now)

        // The store's work (SQLite and the disk's waits) on threads of its own. On the concurrency
        // pool's (one per core) a slow disk held every thread in a write or at the store's lock,
        // and nothing was answered meanwhile, not even a fault switch.
        let storeThreads = NIOThreadPool(numberOfThreads: 2)
        storeThreads.start()

        let tls = try tlsConfiguration()
        let ports = PortFile(path: portFile)
        let hubs = Application(
            responder: CallbackResponder<HubContext> { request, context in
                try await Self.respond(to: request, context: context, platform: platform, storeThreads: storeThreads)
            },
            server: http1Only
                ? try .tls(.http1(), tlsConfiguration: tls)
                : try .http2Upgrade(tlsConfiguration: tls, configuration: .init(streamConfiguration: .init(
                    additionalChannelHandlers: [EndStreamOnLastData.Installer()]))),
            configuration: .init(address: .hostname(host, port: port), serverName: "vaktpost-receiver"),
            onServerRunning: { ports.set(hub: $0.localAddress?.port) },
            logger: logger)
        let admin = Application(
            responder: CallbackResponder<BasicRequestContext> { request, _ in
                let body = try await request.body.collect(upTo: 1 << 20)
                let req = ReceiverRequest(method: request.method.rawValue, target: request.uri.description,
                                          headers: Self.headers(request), body: Array(body.readableBytesView))
                // The fault switches never touch the store: answered at once, however it waits.
                if Platform.isFaultSwitch(req) { return Self.response(platform.admin(req)) }
                return Self.response(try await storeThreads.runIfActive { platform.admin(req) })
            },
            configuration: .init(address: .hostname("127.0.0.1", port: adminPort), serverName: "vaktpost-receiver-admin"),
            onServerRunning: { ports.set(admin: $0.localAddress?.port) },
            logger: logger)
        let group = ServiceGroup(services: [hubs, admin], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        try await storeThreads.shutdownGracefully()
    }

    func tlsConfiguration() throws -> TLSConfiguration {
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(cert).map { NIOSSLCertificateSource.certificate($0) }
            var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
            tls.minimumTLSVersion = .tlsv12
            tls.trustRoots = .file(clientCA)
            // Ask every client for a certificate and verify any that is presented; a request without
            // one is answered 401 by the API (a problem document says why) rather than a bare TLS alert.
            tls.certificateVerification = .optionalVerification
            return tls
        } catch {
            throw ValidationError("cannot load --cert/--key/--client-ca: \(error). deploy/pki.sh DIR makes a dev set.")
        }
    }

    static func headers(_ request: Request) -> [String: String] {
        var out: [String: String] = [:]
        for field in request.headers { out[field.name.canonicalName] = field.value }
        return out
    }

    static func response(_ r: ReceiverResponse) -> Response {
        var fields = HTTPFields()
        for (name, value) in r.headers { if let n = HTTPField.Name(name) { fields[n] = value } }
        return Response(status: .init(code: r.status), headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: r.body)))
    }

    static func respond(to request: Request, context: HubContext, platform: Platform, storeThreads: NIOThreadPool) async throws -> Response {
        let body = try await request.body.collect(upTo: 1 << 20)
        let hubs = await context.certificateHubs()
        // An HTTP/2 stream's parent is its connection (which has a peer); an HTTP/1.1 connection's
        // parent is the listening socket (which has none).
        let isStream = context.channel.parent?.remoteAddress != nil
        let connection = isStream ? context.channel.parent! : context.channel
        let req = ReceiverRequest(method: request.method.rawValue, target: request.uri.description, headers: headers(request),
                                  body: Array(body.readableBytesView), certificateHubs: hubs,
                                  peer: connection.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" },
                                  httpVersion: isStream ? "2" : "1.1")
        if platform.delay > .zero { try await Task.sleep(for: platform.delay) }
        var deadline: ContinuousClock.Instant? = nil
        while true {
            switch try await storeThreads.runIfActive({ platform.handle(req) }) {
            case .respond(let r): return response(r)
            case .dropConnection:
                try? await connection.close()
                throw ConnectionDropped()
            case .hang:
                // Until the hub gives the request up: it closes the connection, or (HTTP/2) resets the stream.
                while connection.isActive && context.channel.isActive { try await Task.sleep(for: .milliseconds(200)) }
                throw ConnectionDropped()
            case .pollAgain(let wait):
                let end = deadline ?? .now + wait
                deadline = end
                if ContinuousClock.now >= end { return response(ReceiverResponse(status: 204)) }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}

/// A hub request's context: the connection, to read the client certificate from its TLS handler.
struct HubContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any NIOCore.Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// The hub ids the client certificate names: its DNS SANs and its CN.
    func certificateHubs() async -> [String] {
        // HTTP/1.1: the TLS handler is on this channel. HTTP/2: on the stream's parent, the connection.
        var found = try? await channel.nioSSL_peerCertificate().get()
        if found == nil, let parent = channel.parent { found = try? await parent.nioSSL_peerCertificate().get() }
        guard let cert = found ?? nil else { return [] }
        var names: [String] = []
        for name in cert._subjectAlternativeNames() where name.nameType == .dnsName {
            names.append(String(decoding: name.contents, as: UTF8.self))
        }
        // NIOSSL has no public subject accessor; its description carries the CN.
        let description = cert.description
        if let range = description.firstRange(of: ";common_name=") {
            let rest = description[range.upperBound...]
            let cn = String(rest.prefix { $0 != ";" && $0 != ">" })
            if !names.contains(cn) { names.append(cn) }
        }
        return names
    }
}

/// Where scripts find the ports when they asked for port 0.
final class PortFile: Sendable {
    let path: String?
    let ports = Mutex<(hub: Int?, admin: Int?)>((nil, nil))

    init(path: String?) { self.path = path }

    func set(hub: Int? = nil, admin: Int? = nil) {
        let both: (Int, Int)? = ports.withLock { p in
            if let hub { p.hub = hub }
            if let admin { p.admin = admin }
            guard let h = p.hub, let a = p.admin else { return nil }
            return (h, a)
        }
        guard let (h, a) = both else { return }
        print("vaktpost-receiver: hubs on port \(h) (mutual TLS), page on http://127.0.0.1:\(a)/")
        if let path { try? Files.writeAtomically(path, Array("\(h) \(a)\n".utf8)) }
    }
}

/// The fault `dropEvery` closed the connection under a request; there is nobody to answer.
struct ConnectionDropped: Error {}
