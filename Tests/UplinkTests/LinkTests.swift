import Testing
import Uplink

@Test func libcurlIsLinkedWithTLS() {
    let curl = CurlLibrary.linked
    #expect(curl.version.split(separator: ".").count == 3, "\(curl.version)")
    // The uplink refuses to send without TLS; the OpenSSL flavour of libcurl is what .ci/run installs.
    #expect(curl.tlsBackend?.contains("OpenSSL") == true, "\(curl.tlsBackend ?? "no TLS")")
}
