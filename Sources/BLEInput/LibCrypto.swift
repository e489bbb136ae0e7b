internal import CLibCrypto

/// OpenSSL's libcrypto behind BLE input: the AES-CCM that encrypted BTHome needs.
public enum LibCrypto {
    /// `OpenSSL 3.0.17 1 Jul 2025`
    public static var version: String { String(cString: OpenSSL_version(numericCast(OPENSSL_VERSION))) }

    /// Whether AES-128-CCM, the cipher of encrypted BTHome, is available in this libcrypto.
    public static var hasAES128CCM: Bool { EVP_aes_128_ccm() != nil }
}
