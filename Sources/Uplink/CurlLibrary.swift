internal import CCurl

/// What the linked libcurl can do. The uplink needs TLS and prefers HTTP/2; a hub whose
/// libcurl lacks either says so in `vaktpost version` instead of failing obscurely later.
public struct CurlLibrary: Sendable {
    public var version: String
    /// The TLS backend, e.g. `OpenSSL/3.0.17`; nil when libcurl was built without TLS.
    public var tlsBackend: String?
    public var supportsHTTP2: Bool

    public static var linked: CurlLibrary {
        guard let info = ccurl_version_info() else {
            return CurlLibrary(version: "unknown", tlsBackend: nil, supportsHTTP2: false)
        }
        let features = Int32(info.pointee.features)
        return CurlLibrary(
            version: String(cString: info.pointee.version),
            tlsBackend: info.pointee.ssl_version.map { String(cString: $0) },
            supportsHTTP2: features & ccurl_feature_http2() != 0)
    }
}
