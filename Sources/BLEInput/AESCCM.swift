internal import CLibCrypto

/// AES-128-CCM as encrypted BTHome uses it: 13-byte nonce, 4-byte tag, no associated data
/// (research/ble.md §2.5), through OpenSSL's `EVP_aes_128_ccm`.
public enum AESCCM {
    /// The plaintext, or nil when the key, nonce or tag is wrong (authentication failed).
    public static func decrypt(key: [UInt8], nonce: [UInt8], ciphertext: [UInt8], tag: [UInt8]) -> [UInt8]? {
        guard key.count == 16, nonce.count == 13, (4...16).contains(tag.count), tag.count % 2 == 0 else { return nil }
        guard let ctx = EVP_CIPHER_CTX_new() else { return nil }
        defer { EVP_CIPHER_CTX_free(ctx) }
        var tag = tag
        var out = [UInt8](repeating: 0, count: max(ciphertext.count, 1))
        var outLength: Int32 = 0
        guard EVP_DecryptInit_ex(ctx, EVP_aes_128_ccm(), nil, nil, nil) == 1,
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 13, nil) == 1,
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, Int32(tag.count), &tag) == 1,
            EVP_DecryptInit_ex(ctx, nil, nil, key, nonce) == 1,
            // CCM needs the total length before any data.
            EVP_DecryptUpdate(ctx, nil, &outLength, nil, Int32(ciphertext.count)) == 1
        else { return nil }
        // For CCM the tag is checked in this one call: anything but 1 means it did not verify.
        let ok = EVP_DecryptUpdate(ctx, &out, &outLength, ciphertext, Int32(ciphertext.count))
        guard ok == 1 else { return nil }
        return Array(out.prefix(Int(outLength)))
    }
}
