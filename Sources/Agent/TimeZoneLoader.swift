import VaktpostCore
import VaktpostPosix

/// Loads the hub's zone from the system tz database (`/usr/share/zoneinfo`, or `$TZDIR`).
public enum TimeZoneLoader {
    public static var zoneinfoDirectory: String { Files.environment("TZDIR") ?? "/usr/share/zoneinfo" }

    public static func load(_ identifier: String, directory: String = zoneinfoDirectory) throws(TimeZoneLoadError) -> TimeZoneRules {
        let path = directory + "/" + identifier
        let bytes: [UInt8]
        do {
            bytes = try Files.read(path, limit: 1 << 20)
        } catch {
            throw TimeZoneLoadError(identifier: identifier, path: path, reason: error.isNotFound
                ? "it is not in the time zone database; check the spelling (e.g. \"Europe/Oslo\") and that the tzdata package is installed"
                : "\(error); check that the tzdata package is installed")
        }
        do {
            return try TimeZoneRules(tzif: bytes, identifier: identifier)
        } catch {
            throw TimeZoneLoadError(identifier: identifier, path: path, reason: error.description)
        }
    }
}

public struct TimeZoneLoadError: Error, Sendable, CustomStringConvertible {
    public var identifier: String
    public var path: String
    public var reason: String
    public var description: String { "time zone \"\(identifier)\" (\(path)): \(reason)" }
}
