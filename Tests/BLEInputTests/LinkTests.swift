import Testing
import BLEInput

@Test func bluezReadsAndWritesAddresses() {
    #expect(BlueZLibrary.canonicalAddress("3c:2e:f5:12:34:56") == "3C:2E:F5:12:34:56")
    #expect(BlueZLibrary.canonicalAddress("3C:2E:F5:12:34") == nil)
    #expect(BlueZLibrary.canonicalAddress("zz:2E:F5:12:34:56") == nil)
}

@Test func libcryptoIsLinkedWithAESCCM() {
    #expect(LibCrypto.version.hasPrefix("OpenSSL 3"), "\(LibCrypto.version)")
    #expect(LibCrypto.hasAES128CCM)
}
