import COpenSSL

/// A PKCS#10 request: a proxy makes one with its own key (which never leaves it) and the
/// SPIFFE ID it asks for; the CA checks the signature and the identity before signing.
public final class CertificateSigningRequest: @unchecked Sendable {
    package let pointer: OpaquePointer

    private init(owning pointer: OpaquePointer) { self.pointer = pointer }

    deinit { X509_REQ_free(pointer) }

    /// A request signed by `key` for the URI SAN `uri` (e.g. "spiffe://cluster.local/ns/a/sa/b").
    public convenience init(key: PrivateKey, uri: String) throws {
        guard let req = X509_REQ_new() else { throw CryptoError("X509_REQ_new failed") }
        self.init(owning: req)
        guard X509_REQ_set_version(req, 0) == 1, X509_REQ_set_pubkey(req, key.pointer) == 1 else {
            throw CryptoError("cannot set the request's key")
        }
        guard meshd_x509_req_add_subject_alt_name(req, "URI:" + uri) == 1 else { throw CryptoError("cannot add the SAN \(uri)") }
        guard X509_REQ_sign(req, key.pointer, EVP_sha256()) > 0 else { throw CryptoError("cannot sign the request") }
    }

    public convenience init(pem: String) throws {
        let req = try PEMBio.read(pem) { PEM_read_bio_X509_REQ($0, nil, nil, nil) }
        guard let req else { throw CryptoError("not a PEM certificate request") }
        self.init(owning: req)
    }

    public var pem: String { PEMBio.write { PEM_write_bio_X509_REQ($0, pointer) } }

    /// The request is signed by the key it carries (proof the requester holds that key).
    public var signatureIsValid: Bool {
        guard let key = X509_REQ_get0_pubkey(pointer) else { return false }
        return X509_REQ_verify(pointer, key) == 1
    }

    package var publicKey: OpaquePointer? { X509_REQ_get0_pubkey(pointer) }

    /// The URI SANs the request asks for.
    public var uriSANs: [String] {
        guard let names = meshd_x509_req_subject_alt_names(pointer) else { return [] }
        defer { meshd_general_names_free(names) }
        var out: [String] = []
        for i in 0..<max(0, meshd_general_names_count(names)) {
            var length: Int32 = 0
            guard let text = meshd_general_name_text(names, i, GEN_URI, &length), length >= 0 else { continue }
            out.append(String(decoding: UnsafeBufferPointer(start: text, count: Int(length)), as: UTF8.self))
        }
        return out
    }
}
