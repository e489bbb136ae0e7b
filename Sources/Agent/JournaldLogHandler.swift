#if canImport(Glibc)
import Glibc
#endif
import Logging
import VaktpostCore
import VaktpostPosix

/// Writes one line per log event to stderr. Under systemd (`JOURNAL_STREAM` set) each line starts
/// with a `<N>` syslog priority that journald turns into the entry's priority; elsewhere a
/// technician at a terminal gets a timestamp and the level in words.
///
/// Logs never carry personal data: callers put sensor ids and rooms in metadata, never names.
public struct JournaldLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String
    private let journal: Bool

    public init(label: String, journal: Bool = Files.environment("JOURNAL_STREAM") != nil) {
        self.label = label
        self.journal = journal
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let line = render(level: event.level, message: "\(event.message)", metadata: event.metadata, now: WallTime(nanosecondsSinceEpoch: SystemClock.now()))
        // One write(2) per line, so lines from concurrent tasks never interleave mid-line.
        let bytes = Array(line.utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    /// The exact line written, for tests.
    public func render(level: Logger.Level, message: String, metadata extra: Logger.Metadata?, now: WallTime) -> String {
        var merged = metadata
        if let extra { merged.merge(extra) { _, new in new } }
        let fields = merged.sorted { $0.key < $1.key }.map { " \($0.key)=\(JournaldLogHandler.quote("\($0.value)"))" }.joined()
        // One event, one line: a newline inside a message would split it into two journal entries.
        let text = message.replacingNewlines()
        if journal {
            return "<\(JournaldLogHandler.priority(level))>\(label): \(text)\(fields)\n"
        }
        return "\(RFC3339.format(now, utcOffsetSeconds: 0, fractionDigits: 3)) \(level) \(label): \(text)\(fields)\n"
    }

    /// syslog priorities (sd-daemon.h): 2 critical ... 7 debug.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    static func quote(_ value: String) -> String {
        value.contains(" ") || value.isEmpty ? "\"" + value.replacingNewlines() + "\"" : value.replacingNewlines()
    }
}

extension String {
    fileprivate func replacingNewlines() -> String {
        contains("\n") ? split(separator: "\n", omittingEmptySubsequences: false).joined(separator: " | ") : self
    }
}
