import VaktpostCore

/// One request as the reference receiver sees it, after TLS: the HTTP layer (Hummingbird) only
/// translates to and from these, so everything the platform decides is testable without a socket.
public struct ReceiverRequest: Sendable {
    public var method: String
    /// The path without the query.
    public var path: String
    public var query: [String: String]
    /// Header names in lower case.
    public var headers: [String: String]
    public var body: [UInt8]
    /// The hub id in the client certificate (CN or DNS SAN), nil when none was presented.
    public var certificateHubs: [String]
    /// The connection as the platform sees it, for `GET /v1/whoami`: "ADDRESS:PORT" and "1.1" or "2".
    public var peer: String?
    public var httpVersion: String?

    public init(method: String, target: String, headers: [String: String] = [:], body: [UInt8] = [], certificateHubs: [String] = [],
                peer: String? = nil, httpVersion: String? = nil) {
        self.peer = peer
        self.httpVersion = httpVersion
        self.method = method
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        path = String(parts[0])
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                query[String(kv[0])] = kv.count == 2 ? String(kv[1]) : ""
            }
        }
        self.query = query
        self.headers = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { _, last in last })
        self.body = body
        self.certificateHubs = certificateHubs
    }
}

public struct ReceiverResponse: Sendable, Equatable {
    public var status: Int
    public var headers: [String: String]
    public var body: [UInt8]

    public init(status: Int, headers: [String: String] = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    static func json(_ status: Int, _ value: JSONValue, headers: [String: String] = [:]) -> ReceiverResponse {
        var h = headers
        h["Content-Type"] = "application/json"
        return ReceiverResponse(status: status, headers: h, body: value.serializedBytes)
    }

    /// RFC 9457: what went wrong and, in `detail`, what the hub or its technician should do.
    static func problem(_ status: Int, _ title: String, _ detail: String, headers: [String: String] = [:]) -> ReceiverResponse {
        var h = headers
        h["Content-Type"] = "application/problem+json"
        let value = JSONValue.object([
            ("type", .string("about:blank")), ("title", .string(title)), ("status", .int(Int64(status))), ("detail", .string(detail)),
        ])
        return ReceiverResponse(status: status, headers: h, body: value.serializedBytes)
    }
}

/// What the HTTP layer does with a request.
public enum ReceiverOutcome: Sendable, Equatable {
    case respond(ReceiverResponse)
    /// A long poll with nothing to give yet: ask again shortly, until `wait` runs out, then 204.
    case pollAgain(wait: Duration)
    /// Close the connection the request came on without answering (fault `dropEvery`).
    case dropConnection
    /// Never answer; wait until the hub closes the connection (fault `hangKept`).
    case hang
}
