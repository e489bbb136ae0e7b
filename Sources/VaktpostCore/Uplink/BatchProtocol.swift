/// The `events:batch` exchange (docs/openapi.yaml): the request body the hub stores with each
/// batch, and the reading of the platform's per-event answer. Pure, so the lanes only move bytes.
public enum BatchProtocol {
    /// The batch envelope around events already serialized by the outbox. The events' own bytes
    /// are spliced in unchanged, so what was stored is exactly what is sent.
    public static func body(hubID: String, batchID: String, sentAt: String, bootID: String, boottimeNanoseconds: UInt64, events: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(events.reduce(256) { $0 + $1.count + 1 })
        JSONValue.object([
            ("hubId", .string(hubID)), ("batchId", .string(batchID)), ("sentAt", .string(sentAt)),
            ("bootId", .string(bootID)), ("boottimeNs", .int(Int64(clamping: boottimeNanoseconds))),
        ]).write(to: &out)
        out.removeLast()  // reopen the object to append "events"
        out += ",\"events\":[".utf8
        for (i, e) in events.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out += e
        }
        out += "]}".utf8
        return out
    }

    public enum Answer: Equatable, Sendable {
        /// What happened to each event the platform answered for.
        case outcomes([EventID: PlatformOutcome])
        /// The body is not a BatchResult: treat as a failed attempt and retry.
        case unreadable(String)
    }

    public enum PlatformOutcome: Equatable, Sendable {
        case accepted
        case duplicate
        case rejected(reason: String)
    }

    /// Reads a 200 answer: `{"results": [{"eventId", "status", "problem"}], ...}`. Events it does
    /// not mention stay queued for a new batch; an unknown status counts as unanswered.
    public static func answer(_ body: [UInt8]) -> Answer {
        guard let json = try? JSONValue.parse(bytes: body), case .array(let results)? = json["results"] else {
            return .unreadable("the platform's answer has no \"results\" list")
        }
        var out: [EventID: PlatformOutcome] = [:]
        for r in results {
            guard let id = r["eventId"]?.stringValue.flatMap(EventID.init) else { continue }
            switch r["status"]?.stringValue {
            case "accepted": out[id] = .accepted
            case "duplicate": out[id] = .duplicate
            case "rejected":
                let problem = r["problem"]
                let reason = problem?["detail"]?.stringValue ?? problem?["title"]?.stringValue ?? "rejected without a reason"
                out[id] = .rejected(reason: reason)
            default: continue
            }
        }
        return .outcomes(out)
    }
}
