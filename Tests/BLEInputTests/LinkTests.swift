import Testing
@testable import BLEInput
import CHCI

@Test func libcryptoIsLinkedWithAESCCM() {
    #expect(LibCrypto.version.hasPrefix("OpenSSL 3"), "\(LibCrypto.version)")
    #expect(LibCrypto.hasAES128CCM)
}

/// The kernel ABI the scanner writes out itself instead of linking libbluetooth: the sizes the
/// kernel expects and the filter BlueZ's hci_filter_set_ptype/set_event would build.
@Test func theHCISocketStructsMatchTheKernels() {
    #expect(MemoryLayout<hci_socket_address>.size == 6)  // struct sockaddr_hci
    #expect(MemoryLayout<hci_socket_filter>.size == 16)  // struct hci_filter, as BlueZ passes it
    let filter = HCIScanner.eventFilter
    #expect(filter.type_mask == 0x10)  // HCI_EVENT_PKT
    #expect(filter.event_mask.0 == 0x0000_C000)  // EVT_CMD_COMPLETE 0x0E, EVT_CMD_STATUS 0x0F
    #expect(filter.event_mask.1 == 0x4000_0000)  // EVT_LE_META_EVENT 0x3E
    #expect(filter.opcode == 0)
}
