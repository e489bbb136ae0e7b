import Foundation
import Testing
import Uplink
import VaktpostCore

let repositoryRoot: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}()

/// A throwaway dev PKI (deploy/pki.sh), made once for the suite.
let pki: String = {
    let dir = NSTemporaryDirectory() + "vaktpost-pki-\(getpid())"
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/bash")
    p.arguments = [repositoryRoot + "/deploy/pki.sh", dir, "hub-0001", "hub-0002"]
    p.standardOutput = FileHandle.nullDevice
    try! p.run()
    p.waitUntilExit()
    precondition(p.terminationStatus == 0, "deploy/pki.sh failed")
    return dir
}()

/// The stand-in platform (Tests/Fixtures/platform_stub.py) on loopback; its /echo paths answer with
/// what it saw (method, path, client certificate CN, client port, headers).
final class LoopbackTLSServer {
    let process = Process()
    let port: Int

    init(cert: String = "server", requireClientCert: Bool = true) throws {
        let portFile = NSTemporaryDirectory() + "vaktpost-port-\(UUID().uuidString)"
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", repositoryRoot + "/Tests/Fixtures/platform_stub.py", "\(pki)/\(cert).pem", "\(pki)/\(cert).key", requireClientCert ? "\(pki)/ca.pem" : "-", portFile]
        process.standardError = FileHandle.nullDevice
        try process.run()
        var port: Int? = nil
        for _ in 0..<300 where port == nil {
            port = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { Int($0) }
            if port == nil { usleep(10_000) }
        }
        try? FileManager.default.removeItem(atPath: portFile)
        self.port = try #require(port, "the loopback TLS server did not start")
    }

    deinit {
        // SIGKILL: the child inherits the test runner's signal mask, which may block SIGTERM.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func url(_ path: String = "/heartbeat", host: String = "localhost") -> String { "https://\(host):\(port)/echo\(path)" }
}

func json(_ r: HTTPResponse) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
}

let hub1 = TLSSettings(caFile: "\(pki)/ca.pem", clientCert: "\(pki)/hub-0001.pem", clientKey: "\(pki)/hub-0001.key", connectTimeout: .seconds(5), totalTimeout: .seconds(10))

@Suite(.serialized) struct HTTPClientTLSTests {
    @Test func mutualTLSPresentsTheHubsIdentityAndReusesTheConnection() throws {
        let server = try LoopbackTLSServer()
        let client = try HTTPClient(tls: hub1)
        let first = try client.send("POST", server.url(), headers: ["Content-Type: application/json", "Idempotency-Key: \"abc\""], body: Array("{\"x\":1}".utf8))
        #expect(first.status == 200)
        let seen = try json(first)
        #expect(seen["clientCN"] as? String == "hub-0001")
        #expect(seen["method"] as? String == "POST")
        #expect(seen["bodyLength"] as? Int == 7)
        #expect(seen["idempotencyKey"] as? String == "\"abc\"")
        #expect(first.header("content-type") == "application/json")
        let second = try json(try client.send("GET", server.url("/config")))
        #expect(second["clientPort"] as? Int == seen["clientPort"] as? Int, "the second request should reuse the TLS connection")
    }

    @Test func aServerCertificateFromAnotherCAIsRefused() throws {
        let server = try LoopbackTLSServer()
        var tls = hub1
        tls.caFile = "\(pki)/other-ca.pem"
        #expect {
            try HTTPClient(tls: tls).send("GET", server.url())
        } throws: { error in
            (error as? CurlError)?.code == 60 && (error as? CurlError)?.hint.contains("ca_file") == true
        }
    }

    @Test func anExpiredServerCertificateIsRefused() throws {
        let server = try LoopbackTLSServer(cert: "expired-server")
        #expect { try HTTPClient(tls: hub1).send("GET", server.url()) } throws: { ($0 as? CurlError)?.code == 60 }
    }

    @Test func aCertificateForAnotherHostNameIsRefused() throws {
        let server = try LoopbackTLSServer(cert: "wrong-host-server")
        #expect { try HTTPClient(tls: hub1).send("GET", server.url()) } throws: { ($0 as? CurlError)?.code == 60 }
    }

    @Test func pinsMustMatchThePlatformsKey() throws {
        let server = try LoopbackTLSServer()
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
        let server = try LoopbackTLSServer()
        var tls = hub1
        tls.clientCert = nil
        tls.clientKey = nil
        #expect { try HTTPClient(tls: tls).send("GET", server.url()) } throws: { error in
            guard let e = error as? CurlError else { return false }
            return [35, 55, 56].contains(e.code)
        }
    }

    @Test func busyAnswersCarryRetryAfter() throws {
        let server = try LoopbackTLSServer()
        let r = try HTTPClient(tls: hub1).send("POST", server.url("/status/503"), body: [])
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
