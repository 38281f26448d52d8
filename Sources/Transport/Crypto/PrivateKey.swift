import COpenSSL

/// An EVP private key (EC P-256 when generated here: Istio's workload keys are EC by default
/// with `ECC_SIGNATURE_ALGORITHM`; P-256 is what its CA issues for).
public final class PrivateKey: @unchecked Sendable {
    package let pointer: OpaquePointer

    package init(owning pointer: OpaquePointer) { self.pointer = pointer }

    /// A fresh EC P-256 key.
    public static func generate() throws -> PrivateKey {
        guard let key = meshd_ec_p256_key() else { throw CryptoError("cannot generate an EC P-256 key") }
        return PrivateKey(owning: key)
    }

    /// Parses a PEM private key (PKCS#8 or traditional).
    public convenience init(pem: String) throws {
        let key = try PEMBio.read(pem) { PEM_read_bio_PrivateKey($0, nil, nil, nil) }
        guard let key else { throw CryptoError("not a PEM private key") }
        self.init(owning: key)
    }

    /// PKCS#8 PEM, unencrypted.
    public var pem: String {
        PEMBio.write { PEM_write_bio_PrivateKey($0, pointer, nil, nil, 0, nil, nil) }
    }

    deinit { EVP_PKEY_free(pointer) }
}

/// PEM through a memory BIO.
package enum PEMBio {
    package static func read<T>(_ pem: String, _ body: (OpaquePointer) -> T?) throws -> T? {
        let bytes = Array(pem.utf8)
        guard let bio = bytes.withUnsafeBytes({ BIO_new_mem_buf($0.baseAddress, Int32($0.count)) }) else {
            throw CryptoError("cannot allocate a BIO")
        }
        defer { BIO_free(bio) }
        // BIO_new_mem_buf reads in place: `bytes` outlives `bio` in this scope.
        return body(bio)
    }

    package static func write(_ body: (OpaquePointer) -> Int32) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        guard body(bio) == 1 else { return "" }
        var data: UnsafeMutablePointer<CChar>?
        let count = meshd_BIO_get_mem_data(bio, &data)
        guard let data, count > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: count), as: UTF8.self)
    }

    /// Every PEM block of `kind` ("CERTIFICATE") in `text`, each with its armour.
    package static func blocks(_ text: String, kind: String = "CERTIFICATE") -> [String] {
        let begin = "-----BEGIN \(kind)-----", end = "-----END \(kind)-----"
        var out: [String] = []
        var rest = Substring(text)
        while let b = rest.firstRange(of: begin), let e = rest[b.upperBound...].firstRange(of: end) {
            out.append(String(rest[b.lowerBound..<e.upperBound]) + "\n")
            rest = rest[e.upperBound...]
        }
        return out
    }
}
