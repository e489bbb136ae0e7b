internal import CBlueZ
internal import CLibCrypto

/// The BlueZ and OpenSSL libraries behind BLE input: address handling and the AES-CCM that
/// encrypted BTHome needs.
public enum BlueZLibrary {
    /// Canonical form of a Bluetooth address (`AA:BB:CC:DD:EE:FF`) as BlueZ reads and writes it,
    /// or nil when BlueZ cannot read it.
    public static func canonicalAddress(_ text: String) -> String? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6, parts.allSatisfy({ $0.count == 2 && UInt8($0, radix: 16) != nil }) else { return nil }
        var address = bdaddr_t()
        guard str2ba(text, &address) == 0 else { return nil }
        var buffer = [CChar](repeating: 0, count: 18)
        guard ba2str(&address, &buffer) >= 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

public enum LibCrypto {
    /// `OpenSSL 3.0.17 1 Jul 2025`
    public static var version: String { String(cString: OpenSSL_version(numericCast(OPENSSL_VERSION))) }

    /// Whether AES-128-CCM, the cipher of encrypted BTHome, is available in this libcrypto.
    public static var hasAES128CCM: Bool { EVP_aes_128_ccm() != nil }
}
