internal import CCurl
import Glibc
import Synchronization
import VaktpostCore

/// How the hub proves itself and checks the platform: the `[platform]` settings.
public struct TLSSettings: Sendable {
    /// CA bundle that signs the platform's certificate; the system store when nil.
    public var caFile: String?
    /// SPKI pins, `sha256//<base64>`: the platform's key must match one.
    public var pins: [String]
    public var clientCert: String?
    public var clientKey: String?
    public var connectTimeout: Duration
    public var totalTimeout: Duration

    public init(caFile: String?, pins: [String] = [], clientCert: String? = nil, clientKey: String? = nil,
                connectTimeout: Duration = .seconds(10), totalTimeout: Duration = .seconds(30)) {
        self.caFile = caFile
        self.pins = pins
        self.clientCert = clientCert
        self.clientKey = clientKey
        self.connectTimeout = connectTimeout
        self.totalTimeout = totalTimeout
    }

    public init(_ platform: PlatformConfig, totalTimeout: Duration = .seconds(30)) {
        self.init(caFile: platform.caFile, pins: platform.pins, clientCert: platform.clientCert, clientKey: platform.clientKey,
                  connectTimeout: platform.connectTimeout, totalTimeout: totalTimeout)
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]
    /// "2" for HTTP/2, "1.1" otherwise.
    public var httpVersion: String
    /// Whole days until the platform's certificate expires, when the TLS library told.
    public var certificateExpiry: Int? = nil
    /// From the request's first byte sent to the answer's first byte received: the platform's
    /// own time and a round trip, without connecting or the TLS handshake.
    public var answeredIn: Duration = .zero

    /// Header lookup, case-insensitive; the last one when repeated.
    public func header(_ name: String) -> String? {
        headers.last { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// A failed request: libcurl's code and message, and what to do about it.
public struct CurlError: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: Int32
    public var message: String

    public init(code: Int32, message: String) {
        self.code = code
        self.message = message
    }

    public var hint: String {
        switch code {
        case 6: return "the platform's host name does not resolve: check [platform] url and the hub's DNS"
        case 7: return "nothing answers at the platform's address: it is down, or a firewall blocks the port"
        case 28: return "the platform did not answer in time: the link is slow or down"
        case 35: return "the TLS handshake failed: the platform may have refused the hub's certificate, or speaks no TLS 1.2+"
        case 55, 56: return "the connection broke: the link dropped, or the platform refused the hub's certificate"
        case 58: return "the hub's certificate or key cannot be used: check client_cert and client_key (readable, PEM, a matching pair)"
        case 60: return "the platform's certificate does not verify against ca_file: wrong CA, expired, or issued for another host name"
        case 77: return "ca_file cannot be read: check its path and permissions"
        case 90: return "the platform's public key matches none of the configured pins: the platform changed keys, or this is not the platform"
        case 42: return "the request was abandoned because the agent is stopping"
        default: return "see the message; the request will be retried"
        }
    }

    public var description: String { "\(message) (curl \(code)): \(hint)" }
}

/// One libcurl easy handle: connections are reused between requests, and HTTP/2 is used when the
/// platform offers it. Blocking: call it from the uplink's own thread, never the concurrency pool.
public final class HTTPClient {
    private var handle: UnsafeMutableRawPointer
    private let tls: TLSSettings
    private var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE))
    private let abandon: (@Sendable () -> Bool)?
    /// Its connections' sockets, for another thread to cut a request short (`ConnectionCutter`).
    public let cutter = ConnectionCutter()

    /// `abandon` is asked at libcurl's progress calls (often while data flows, about once a
    /// second while the connection is silent); true ends the request (curl 42), so a stopping
    /// agent never waits out a long poll or a slow platform. To end it at once from another
    /// thread, make `abandon` say so, then `cutter.cut()`.
    public init(tls: TLSSettings, abandon: (@Sendable () -> Bool)? = nil) throws(CurlError) {
        guard let h = curl_easy_init() else { throw CurlError(code: 2, message: "curl_easy_init failed") }
        handle = h
        self.tls = tls
        self.abandon = abandon
    }

    deinit { curl_easy_cleanup(handle) }

    /// A connection whose sent bytes stay unacknowledged this long fails (TCP_USER_TIMEOUT), from
    /// the first request on it (set once it is connected, see `ResponseSink.connected`).
    /// A connection can die without a word: the hub's 4G router reconnects with a new address, a
    /// NAT mapping expires. Without a limit a request on it waits out the lane's timeout and, as
    /// libcurl keeps an HTTP/2 connection whose stream timed out, every retry after it too, until
    /// TCP gives up after some 15 minutes of retransmissions (measured: an alarm never arrived).
    /// A live platform acknowledges at the TCP level at once, however long it takes to answer.
    static let unacknowledgedLimit = Duration.seconds(5)
    /// Idle kept connections are probed (TCP keepalive) once a minute: keeps NAT mappings open
    /// within libcurl's 118 s reuse window, and a dead connection is found (an unanswered probe
    /// fails it after `unacknowledgedLimit`) before a request needs it. Not more often: a probe
    /// and its answer cost ~100 bytes of a hub's mobile data plan, per idle connection.
    static let keepaliveIdle = 60, keepaliveInterval = 20

    /// `fresh`: on a connection of its own, opened for this request and closed after it (never one
    /// kept from an earlier request, which may have died without a word).
    public func send(_ method: String, _ url: String, headers: [String] = [], body: [UInt8]? = nil, fresh: Bool = false) throws(CurlError) -> HTTPResponse {
        curl_easy_reset(handle)  // keeps the connection cache
        let sink = ResponseSink(abandon: abandon, cutter: cutter)
        let unmanaged = Unmanaged.passRetained(sink)
        defer { unmanaged.release() }
        var list: UnsafeMutablePointer<curl_slist>? = nil
        for h in headers { list = curl_slist_append(list, h) }
        defer { curl_slist_free_all(list) }

        var code = CURLE_OK
        func set(_ option: CURLoption, _ value: Int) { if code == CURLE_OK { code = ccurl_setopt_long(handle, option, value) } }
        func set(_ option: CURLoption, _ value: String) { if code == CURLE_OK { code = value.withCString { ccurl_setopt_ptr(handle, option, $0) } } }
        func set(_ option: CURLoption, pointer: UnsafeRawPointer?) { if code == CURLE_OK { code = ccurl_setopt_ptr(handle, option, pointer) } }

        set(CURLOPT_URL, url)
        set(CURLOPT_CUSTOMREQUEST, method)
        set(CURLOPT_NOSIGNAL, 1)
        set(CURLOPT_PROTOCOLS_STR, "https")
        set(CURLOPT_SSLVERSION, Int(CURL_SSLVERSION_TLSv1_2))
        set(CURLOPT_SSL_VERIFYPEER, 1)
        set(CURLOPT_SSL_VERIFYHOST, 2)
        set(CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
        set(CURLOPT_CONNECTTIMEOUT_MS, Int(tls.connectTimeout.nanoseconds / 1_000_000))
        set(CURLOPT_TCP_KEEPALIVE, 1)
        set(CURLOPT_TCP_KEEPIDLE, Self.keepaliveIdle)
        set(CURLOPT_TCP_KEEPINTVL, Self.keepaliveInterval)
        set(CURLOPT_TIMEOUT_MS, Int(tls.totalTimeout.nanoseconds / 1_000_000))
        if let ca = tls.caFile { set(CURLOPT_CAINFO, ca) }
        if !tls.pins.isEmpty { set(CURLOPT_PINNEDPUBLICKEY, tls.pins.joined(separator: ";")) }
        if let cert = tls.clientCert { set(CURLOPT_SSLCERT, cert) }
        if let key = tls.clientKey { set(CURLOPT_SSLKEY, key) }
        set(CURLOPT_HTTPHEADER, pointer: UnsafeRawPointer(list))
        set(CURLOPT_CERTINFO, 1)
        if fresh {
            set(CURLOPT_FRESH_CONNECT, 1)
            set(CURLOPT_FORBID_REUSE, 1)
        }
        set(CURLOPT_WRITEFUNCTION, pointer: unsafeBitCast(ResponseSink.write as @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int, to: UnsafeRawPointer.self))
        set(CURLOPT_WRITEDATA, pointer: UnsafeRawPointer(unmanaged.toOpaque()))
        set(CURLOPT_HEADERFUNCTION, pointer: unsafeBitCast(ResponseSink.header as @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int, to: UnsafeRawPointer.self))
        set(CURLOPT_HEADERDATA, pointer: UnsafeRawPointer(unmanaged.toOpaque()))
        set(CURLOPT_SOCKOPTFUNCTION, pointer: unsafeBitCast(ResponseSink.socketOpened as @convention(c) (UnsafeMutableRawPointer?, curl_socket_t, curlsocktype) -> Int32, to: UnsafeRawPointer.self))
        set(CURLOPT_SOCKOPTDATA, pointer: UnsafeRawPointer(unmanaged.toOpaque()))
        // A connection keeps the close callback and its data it was made with, past this request
        // and this handle (`dropConnections`): the cutter lives as long as the client.
        set(CURLOPT_CLOSESOCKETFUNCTION, pointer: unsafeBitCast(ConnectionCutter.closeSocket as @convention(c) (UnsafeMutableRawPointer?, curl_socket_t) -> Int32, to: UnsafeRawPointer.self))
        set(CURLOPT_CLOSESOCKETDATA, pointer: UnsafeRawPointer(Unmanaged.passUnretained(cutter).toOpaque()))
        set(CURLOPT_PREREQFUNCTION, pointer: unsafeBitCast(ResponseSink.connected as @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<CChar>?, Int32, Int32) -> Int32, to: UnsafeRawPointer.self))
        set(CURLOPT_PREREQDATA, pointer: UnsafeRawPointer(unmanaged.toOpaque()))
        if abandon != nil {
            set(CURLOPT_NOPROGRESS, 0)
            set(CURLOPT_XFERINFOFUNCTION, pointer: unsafeBitCast(ResponseSink.progress as @convention(c) (UnsafeMutableRawPointer?, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> Int32, to: UnsafeRawPointer.self))
            set(CURLOPT_XFERINFODATA, pointer: UnsafeRawPointer(unmanaged.toOpaque()))
        }
        errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE))
        errorBuffer.withUnsafeMutableBufferPointer { set(CURLOPT_ERRORBUFFER, pointer: UnsafeRawPointer($0.baseAddress)) }
        guard code == CURLE_OK else { throw CurlError(code: Int32(code.rawValue), message: String(cString: curl_easy_strerror(code))) }

        let perform: () -> CURLcode = { [handle] in
            if let body {
                return body.withUnsafeBytes { bytes in
                    var c = ccurl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, bytes.count)
                    if c == CURLE_OK { c = ccurl_setopt_ptr(handle, CURLOPT_POSTFIELDS, bytes.baseAddress) }
                    return c == CURLE_OK ? curl_easy_perform(handle) : c
                }
            }
            return curl_easy_perform(handle)
        }
        var result = perform()
        if Self.closedUnderneath(result), reusedConnection(), abandon?() != true {
            // The platform closed the kept-alive connection as this request went out on it: an
            // HTTP/2 GOAWAY (a server's stream limit or reset defence), a load balancer's or an
            // HTTP/1.1 keep-alive timeout, a restart. That says nothing about the platform, so the
            // request goes again at once on a new connection rather than waiting out the lane's
            // backoff (an alarm 250 ms late).
            // Safe because every request the agent sends is idempotent (event ids, Idempotency-Key).
            // Not when the request is being given up: a `ConnectionCutter.cut()` looks the same.
            sink.reset()
            errorBuffer.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            if ccurl_setopt_long(handle, CURLOPT_FRESH_CONNECT, 1) == CURLE_OK { result = perform() }
        }
        guard result == CURLE_OK else {
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            dropConnections()
            throw CurlError(code: Int32(result.rawValue), message: detail.isEmpty ? String(cString: curl_easy_strerror(result)) : detail)
        }
        var status = 0
        _ = ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        var version = 0
        _ = ccurl_getinfo_long(handle, CURLINFO_HTTP_VERSION, &version)
        var response = HTTPResponse(status: status, headers: sink.headers, body: sink.body, httpVersion: version == Int(CURL_HTTP_VERSION_2_0) ? "2" : "1.1")
        response.certificateExpiry = peerCertificateExpiry()
        var sent: curl_off_t = 0, answered: curl_off_t = 0
        if ccurl_getinfo_off(handle, CURLINFO_PRETRANSFER_TIME_T, &sent) == CURLE_OK,
           ccurl_getinfo_off(handle, CURLINFO_STARTTRANSFER_TIME_T, &answered) == CURLE_OK {
            response.answeredIn = .microseconds(max(0, answered - sent))
        }
        return response
    }

    /// Failures of a connection that went away under the request (not of the platform's answer):
    /// HTTP/2 framing or stream errors (GOAWAY), an HTTP/2 stream cut off by the connection's end
    /// (libcurl 7.88 says CURLE_PARTIAL_FILE), an empty reply, a send or receive error.
    static func closedUnderneath(_ result: CURLcode) -> Bool {
        [CURLE_HTTP2, CURLE_HTTP2_STREAM, CURLE_PARTIAL_FILE, CURLE_GOT_NOTHING, CURLE_SEND_ERROR, CURLE_RECV_ERROR].contains(result)
    }

    /// After a failed request the next one starts on a new connection: the failure may have been
    /// the connection's, and libcurl keeps an HTTP/2 connection whose stream timed out for reuse.
    /// A new easy handle is the only way to close the old one's cached connections.
    private func dropConnections() {
        guard let fresh = curl_easy_init() else { return }  // out of memory: keep what works
        curl_easy_cleanup(handle)
        handle = fresh
    }

    /// `unacknowledgedLimit` in milliseconds, as the socket option takes it.
    static let unacknowledgedLimitMs = UInt32(unacknowledgedLimit.nanoseconds / 1_000_000)

    /// The dead-peer limit (TCP_USER_TIMEOUT, ms) for a connection whose retransmission timeout,
    /// from its measured round trips, is `rtoMicros`: `unacknowledgedLimit`, or three of those
    /// timeouts on a slow link, at most a minute. Linux checks the limit when a retransmission
    /// falls due; where one timeout is longer than 5 s (3G under load, a congested or satellite
    /// backhaul, round trips of seconds), the first retransmission of one lost segment would end
    /// a live connection, and a bulk batch that takes long enough to meet a loss would never go.
    static func unacknowledgedLimitMs(rtoMicros: Int) -> UInt32 {
        UInt32(min(60_000, max(Int(unacknowledgedLimitMs), 3 * rtoMicros / 1000)))
    }

    /// Gives a connected socket the dead-peer limit its round trips call for (above); nothing
    /// for one not connected yet, whose handshake the limit would cut short, or, with
    /// `otherwise`, that limit when its round trips cannot be read.
    static func fitUnacknowledgedLimit(_ fd: curl_socket_t, otherwise: UInt32? = nil) {
        let rto = ccurl_rto_estimate(fd)
        guard let ms = rto >= 0 ? unacknowledgedLimitMs(rtoMicros: rto) : otherwise else { return }
        _ = ccurl_set_user_timeout(fd, ms)
    }

    /// TCP_USER_TIMEOUT (ms) and SO_KEEPALIVE of the connection the last request used and
    /// libcurl kept, for tests.
    func keptConnectionOptions() -> (userTimeoutMs: Int, keepalive: Bool)? {
        var fd: curl_socket_t = -1
        guard ccurl_getinfo_ptr(handle, CURLINFO_ACTIVESOCKET, &fd) == CURLE_OK, fd >= 0 else { return nil }
        return (ccurl_user_timeout(fd), ccurl_keepalive(fd) == 1)
    }

    /// The last request went out on a connection kept from an earlier one (no new connect).
    func reusedConnection() -> Bool {
        var connects = 0
        return ccurl_getinfo_long(handle, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects == 0
    }

    /// "Expire date: Jan  1 00:00:00 2030 GMT" of the first (the platform's own) certificate,
    /// from CURLINFO_CERTINFO, as days from now. Only a new connection reports it.
    func peerCertificateExpiry() -> Int? {
        var info: UnsafeMutablePointer<curl_certinfo>? = nil
        guard ccurl_getinfo_ptr(handle, CURLINFO_CERTINFO, &info) == CURLE_OK, let info, info.pointee.num_of_certs > 0,
              var item = info.pointee.certinfo?[0] else { return nil }
        while true {
            let line = String(cString: item.pointee.data)
            if line.hasPrefix("Expire date:") { return Self.daysUntil(String(line.dropFirst("Expire date:".count))) }
            guard let next = item.pointee.next else { return nil }
            item = next
        }
    }

    /// OpenSSL's "Jan  1 00:00:00 2030 GMT" as whole days from now.
    static func daysUntil(_ text: String) -> Int? {
        let parts = text.split(separator: " ")
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard parts.count >= 4, let m = months.firstIndex(of: String(parts[0])), let d = Int(parts[1]), let y = Int(parts[3]) else { return nil }
        let hms = parts[2].split(separator: ":").compactMap { Int($0) }
        guard hms.count == 3 else { return nil }
        let expiry = CivilDateTime(year: y, month: m + 1, day: d, hour: hms[0], minute: hms[1], second: hms[2]).asUTC
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let left = expiry.secondsSinceEpoch - Int64(ts.tv_sec)
        return Int(left >= 0 ? left / 86400 : (left - 86399) / 86400)
    }
}

@available(*, unavailable)
extension HTTPClient: Sendable {}

/// The sockets of one client's connections, so that another thread can end the client's request
/// at once: `abandon` is only asked at libcurl's progress calls, about once a second while a
/// connection is silent. A socket is in the set from its opening (`ResponseSink.socketOpened`)
/// until libcurl closes it through `closeSocket`, under the same lock as `cut`, so a socket
/// number is never cut after it has been closed and given to something else.
public final class ConnectionCutter: Sendable {
    private let open = Mutex<Set<Int32>>([])

    /// Shuts every connection of the client down (both ways): a request on one fails at once.
    /// The client does not send it again if its `abandon` says so; say that before cutting.
    public func cut() {
        open.withLock { sockets in
            for fd in sockets { _ = shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    /// `HTTPClient.fitUnacknowledgedLimit` on every connection, under the lock: a socket
    /// libcurl has closed, its number perhaps given to another, is not touched.
    func fitUnacknowledgedLimits() {
        open.withLock { sockets in
            for fd in sockets { HTTPClient.fitUnacknowledgedLimit(fd) }
        }
    }

    func opened(_ fd: curl_socket_t) {
        open.withLock { _ = $0.insert(fd) }
    }

    static let closeSocket: @convention(c) (UnsafeMutableRawPointer?, curl_socket_t) -> Int32 = { context, fd in
        guard let context else { return close(fd) }
        let cutter = Unmanaged<ConnectionCutter>.fromOpaque(context).takeUnretainedValue()
        return cutter.open.withLock { sockets in
            sockets.remove(fd)
            return close(fd)
        }
    }
}

/// Collects a response from libcurl's callbacks.
final class ResponseSink {
    var body: [UInt8] = []
    var headers: [(String, String)] = []
    let abandon: (@Sendable () -> Bool)?
    let cutter: ConnectionCutter

    init(abandon: (@Sendable () -> Bool)?, cutter: ConnectionCutter) {
        self.abandon = abandon
        self.cutter = cutter
    }

    /// Forgets what a failed attempt received, before the request is sent again.
    func reset() {
        body = []
        headers = []
        sockets = []
    }

    /// The sockets libcurl opened for this request (two when both address families are tried).
    var sockets: [curl_socket_t] = []

    static let socketOpened: @convention(c) (UnsafeMutableRawPointer?, curl_socket_t, curlsocktype) -> Int32 = { context, fd, _ in
        if let context {
            let sink = Unmanaged<ResponseSink>.fromOpaque(context).takeUnretainedValue()
            sink.sockets.append(fd)
            sink.cutter.opened(fd)
        }
        return Int32(CURL_SOCKOPT_OK)
    }

    /// Connected (TLS done), the request not yet sent: the new connection gets the dead-peer limit
    /// now, so that even its first request does not wait out the lane's timeout on a path that
    /// died under it. Not when the socket opens: Linux applies TCP_USER_TIMEOUT to the handshake
    /// too, which would cut the configured connect timeout short. From its round trips so far (the
    /// TCP and TLS handshakes); libcurl's progress calls keep it fitted (`fitUnacknowledgedLimits`).
    static let connected: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<CChar>?, Int32, Int32) -> Int32 = {
        context, _, _, _, localPort in
        guard let context else { return Int32(CURL_PREREQFUNC_OK) }
        let sink = Unmanaged<ResponseSink>.fromOpaque(context).takeUnretainedValue()
        for fd in sink.sockets where ccurl_local_port(fd) == localPort {
            HTTPClient.fitUnacknowledgedLimit(fd, otherwise: HTTPClient.unacknowledgedLimitMs)
        }
        return Int32(CURL_PREREQFUNC_OK)
    }

    static let progress: @convention(c) (UnsafeMutableRawPointer?, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> Int32 = { context, _, _, _, _ in
        guard let context else { return 0 }
        let sink = Unmanaged<ResponseSink>.fromOpaque(context).takeUnretainedValue()
        // The round trips change with the load (a batch filling a mobile modem's queue): the
        // limit follows them while a request runs, and a kept connection gets it anew.
        sink.cutter.fitUnacknowledgedLimits()
        return sink.abandon?() == true ? 1 : 0
    }

    static let write: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = { data, size, count, context in
        guard let data, let context else { return 0 }
        let sink = Unmanaged<ResponseSink>.fromOpaque(context).takeUnretainedValue()
        sink.body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: size * count))
        return size * count
    }

    static let header: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = { data, size, count, context in
        guard let data, let context else { return 0 }
        let sink = Unmanaged<ResponseSink>.fromOpaque(context).takeUnretainedValue()
        let line = String(decoding: UnsafeRawBufferPointer(start: data, count: size * count), as: UTF8.self)
        if line.hasPrefix("HTTP/") { sink.headers = [] }  // a new response (after a 100 Continue or a redirect)
        if let colon = line.firstIndex(of: ":") {
            let name = String(line[..<colon])
            let value = String(line[line.index(after: colon)...].trimmingWhitespace())
            sink.headers.append((name, value))
        }
        return size * count
    }
}
