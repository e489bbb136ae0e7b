#if canImport(Glibc)
import Glibc
#endif
import BLEInput
import VaktpostCore

// Every parser that reads bytes from outside: HCI events, btsnoop captures, BTHome service data
// (plain and encrypted), config files, scenario files, JSON, ESP3 serial streams, and the
// platform's replies (batch results, alarm status, heartbeat replies, commands) and the clock
// correction of stored events. The first input byte picks the parser (0xF0 and up: replies).
//
// Fuzzing (main hands over to libFuzzer's driver):
//   swift build -c release --scratch-path .build-fuzz --product fuzz-parsers \
//     -Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING
//   .build-fuzz/release/fuzz-parsers -runs=1000000 -max_len=512 Tests/Fuzz/corpus
// A normal build replays inputs instead (to re-run a crash file): fuzz-parsers FILE...

let key: [UInt8] = [0x23, 0x1D, 0x39, 0xC1, 0xD7, 0xCC, 0x1A, 0xB1, 0xAE, 0xE2, 0x24, 0xCD, 0x09, 0x6D, 0xB9, 0x32]

/// `FUZZ_PARSER=N` pins the parser (0-6 as `selector % 7`, 240 for the replies) and hands it the
/// whole input, so each parser can be given its own 10 M runs (Benchmarks/fuzz_each.sh).
let pinnedParser: UInt8? = getenv("FUZZ_PARSER").flatMap { UInt8(String(cString: $0)) }

func exercise(_ input: [UInt8]) {
    guard let selector = pinnedParser ?? input.first else { return }
    let body = pinnedParser == nil ? Array(input.dropFirst()) : input
    if selector >= 0xF0 {
        _ = BatchProtocol.answer(body)
        _ = AlarmHandling.parse(body)
        _ = HeartbeatReply.parse(body)
        _ = PlatformCommand.list(body)
        _ = TimeCorrection.correct(body, bootID: "b", offsetNanoseconds: 1_790_000_000_000_000_000, zone: .utc)
        _ = TimeCorrection.correct(body, bootID: "b", offsetNanoseconds: Int64.max, zone: .utc)
        return
    }
    switch selector % 7 {
    case 0:
        if case .success(let reports) = HCI.advertisingReports(body) {
            for r in reports { _ = AdvertisingData(r.data) }
        }
        _ = AdvertisingData(body)
    case 1:
        _ = BTSnoop.events(body)
    case 2:
        var history = BTHomeHistory()
        let t = WallTime(secondsSinceEpoch: 1_790_000_000)
        _ = BTHome.decode(serviceData: body, mac: "54:48:E6:8F:80:A5", key: nil, at: t, history: &history, decrypt: AESCCM.decrypt)
        _ = BTHome.decode(serviceData: body, mac: "54:48:E6:8F:80:A5", key: nil, at: t + .seconds(1), history: &history, decrypt: AESCCM.decrypt)  // a copy
        _ = BTHome.decode(serviceData: body, mac: "54:48:E6:8F:80:A5", key: key, at: t, history: &history, decrypt: AESCCM.decrypt)
    case 3:
        _ = ConfigReader.read(String(decoding: body, as: UTF8.self))
    case 4:
        _ = Scenario.parse(String(decoding: body, as: UTF8.self), sensors: [SensorID("bed")!, SensorID("door")!])
    case 5:
        // Replies as they come off the wire. What was read is written, and what is written reads
        // back to be written the same (a number may change form once: 2.0 is written 2).
        if let value = try? JSONValue.parse(bytes: body) {
            let written = value.serializedBytes
            guard let again = try? JSONValue.parse(bytes: written), again.serializedBytes == written else {
                fatalError("JSON written as \(String(decoding: written, as: UTF8.self)) does not read back to the same text")
            }
        }
    default:
        // Whole, then in pieces as a serial port delivers them, then the idle timeout.
        var whole = ESP3Framer()
        for packet in whole.feed(body) {
            let t = ESP3Telegram(packet)
            for eep in EEP.supported { _ = t.json(eep: eep) }
            for role in SensorRole.allCases { _ = EEP.reading(t, eep: "D5-00-01", role: role) }
        }
        var pieces = ESP3Framer()
        var i = 0
        while i < body.count {
            _ = pieces.feed(body[i..<min(body.count, i + 3)])
            i += 3
        }
        _ = pieces.flushStale()
    }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    exercise(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// libFuzzer's entry for programs that have a main of their own (SwiftPM gives every executable one).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

@main
struct FuzzMain {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOneInput))
    }
}
#else
@main
struct FuzzReplay {
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            guard let f = fopen(path, "rb") else { continue }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = fread(&buffer, 1, buffer.count, f)
                if n <= 0 { break }
                bytes += buffer[0..<n]
            }
            fclose(f)
            exercise(bytes)
        }
    }
}
#endif
