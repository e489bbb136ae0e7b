import VaktpostCore
import VaktpostPosix

/// A btsnoop capture as a source of HCI events, in place of the adapter (`[ble] replay`,
/// `vaktpost scan --ble --replay FILE`): the same events, through the same parser.
public enum BTSnoopSource {
    public static func events(path: String) throws -> [BTSnoopRecord] {
        let bytes = try Files.read(path, limit: 256 << 20)
        switch BTSnoop.events(bytes) {
        case .success(let records): return records
        case .failure(let error): throw error
        }
    }
}
