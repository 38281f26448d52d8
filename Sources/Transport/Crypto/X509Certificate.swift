import COpenSSL
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An X.509 certificate (an owned `X509*`): PEM in and out, its facts, and issuing.
public final class X509Certificate: @unchecked Sendable {
    package let pointer: OpaquePointer

    package init(owning pointer: OpaquePointer) { self.pointer = pointer }

    public convenience init(pem: String) throws {
        let cert = try PEMBio.read(pem) { PEM_read_bio_X509($0, nil, nil, nil) }
        guard let cert else { throw CryptoError("not a PEM certificate") }
        self.init(owning: cert)
    }

    /// Every certificate of a PEM bundle, in order.
    public static func chain(pem: String) throws -> [X509Certificate] {
        try PEMBio.blocks(pem).map { try X509Certificate(pem: $0) }
    }

    public var pem: String { PEMBio.write { PEM_write_bio_X509($0, pointer) } }

    public var facts: TLSCertificateFacts? { TLSCertificateFacts(x509: pointer) }

    /// True when `key` is this certificate's key pair.
    public func matches(_ key: PrivateKey) -> Bool { X509_check_private_key(pointer, key.pointer) == 1 }

    /// True when `issuer`'s key signed this certificate.
    public func isSigned(by issuer: X509Certificate) -> Bool {
        guard let key = X509_get0_pubkey(issuer.pointer) else { return false }
        return X509_verify(pointer, key) == 1
    }

    deinit { X509_free(pointer) }

    /// What an issued certificate is for.
    public enum Profile: Sendable {
        /// A CA that signs workload certificates (Istio's self-signed root: O=<org>).
        case certificateAuthority
        /// A workload (or server) leaf: digitalSignature + keyEncipherment, server and client auth.
        case leaf(subjectAltNames: [String])
    }

    /// Issues a certificate for `subjectKey`'s public half. `issuer` nil = self-signed.
    /// - Parameter subjectAltNames: OpenSSL config syntax, e.g. "URI:spiffe://…", "DNS:…", "IP:…".
    public static func issue(publicKeyOf subjectKey: OpaquePointer, subject: [(String, String)], profile: Profile,
                             notBefore: Date, notAfter: Date,
                             issuer: (certificate: X509Certificate, key: PrivateKey)?, selfKey: PrivateKey? = nil) throws -> X509Certificate {
        guard let cert = X509_new() else { throw CryptoError("X509_new failed") }
        let owned = X509Certificate(owning: cert)
        guard X509_set_version(cert, 2) == 1 else { throw CryptoError("cannot set the version") }
        let serial = try HMACSHA256.randomBytes(16)
        var positive = serial
        positive[0] &= 0x7f  // a positive INTEGER
        guard let bn = BN_bin2bn(positive, Int32(positive.count), nil) else { throw CryptoError("BN_bin2bn failed") }
        defer { BN_free(bn) }
        guard BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != nil else { throw CryptoError("cannot set the serial") }
        guard X509_time_adj_ex(X509_getm_notBefore(cert), 0, Int(notBefore.timeIntervalSince1970) - Int(time(nil)), nil) != nil,
              X509_time_adj_ex(X509_getm_notAfter(cert), 0, Int(notAfter.timeIntervalSince1970) - Int(time(nil)), nil) != nil
        else { throw CryptoError("cannot set the validity") }
        guard let name = X509_NAME_new() else { throw CryptoError("X509_NAME_new failed") }
        defer { X509_NAME_free(name) }
        for (field, value) in subject {
            guard X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, value, -1, -1, 0) == 1 else {
                throw CryptoError("cannot set subject \(field)")
            }
        }
        guard X509_set_subject_name(cert, name) == 1 else { throw CryptoError("cannot set the subject") }
        let issuerCert = issuer?.certificate.pointer ?? cert
        guard X509_set_issuer_name(cert, X509_get_subject_name(issuerCert)) == 1,
              X509_set_pubkey(cert, subjectKey) == 1 else { throw CryptoError("cannot set the issuer or key") }
        var extensions: [(Int32, String)] = []
        switch profile {
        case .certificateAuthority:
            extensions = [(NID_basic_constraints, "critical,CA:TRUE"), (NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature"),
                          (NID_subject_key_identifier, "hash")]
        case .leaf(let sans):
            extensions = [(NID_basic_constraints, "critical,CA:FALSE"), (NID_key_usage, "critical,digitalSignature,keyEncipherment"),
                          (NID_ext_key_usage, "serverAuth,clientAuth")]
            if !sans.isEmpty { extensions.append((NID_subject_alt_name, "critical," + sans.joined(separator: ","))) }
        }
        if issuer != nil { extensions.append((NID_authority_key_identifier, "keyid:always")) }
        for (nid, value) in extensions {
            guard meshd_x509_add_extension(cert, issuerCert, nid, value) == 1 else {
                throw CryptoError("cannot add extension \(value)")
            }
        }
        guard let signingKey = issuer?.key ?? selfKey else { throw CryptoError(plain: "no signing key") }
        guard X509_sign(cert, signingKey.pointer, EVP_sha256()) > 0 else { throw CryptoError("cannot sign the certificate") }
        return owned
    }
}
