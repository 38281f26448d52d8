import COpenSSL
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI

/// What a downstream TLS handshake established, as filters see it (Envoy's
/// `Ssl::ConnectionInfo`): read once when the handshake completes.
public struct TLSConnectionFacts: Sendable, Equatable {
    /// e.g. "TLSv1.3".
    public var version: String
    /// OpenSSL's name, e.g. "TLS_AES_128_GCM_SHA256".
    public var cipher: String
    /// The IANA cipher suite number, e.g. 0x1301.
    public var cipherID: UInt16
    /// The session id, lower-case hex ("" when there is none).
    public var sessionID: String
    /// The client's certificate, when it presented one.
    public var peerCertificate: TLSCertificateFacts?
    /// The peer's certificate was presented and verified against the listener's CAs.
    public var peerCertificateValidated: Bool
    /// The certificate this side presented.
    public var localCertificate: TLSCertificateFacts?

    public init(version: String, cipher: String, cipherID: UInt16 = 0, sessionID: String = "",
                peerCertificate: TLSCertificateFacts? = nil, peerCertificateValidated: Bool = false,
                localCertificate: TLSCertificateFacts? = nil) {
        self.version = version
        self.cipher = cipher
        self.cipherID = cipherID
        self.sessionID = sessionID
        self.peerCertificate = peerCertificate
        self.peerCertificateValidated = peerCertificateValidated
        self.localCertificate = localCertificate
    }
}

/// An X.509 certificate's facts, in the forms Envoy reports them.
public struct TLSCertificateFacts: Sendable, Equatable {
    public var der: [UInt8]
    public var pem: String
    /// RFC 2253, e.g. "CN=client,O=example".
    public var subject: String
    /// The subject's CN ("" when none) and O entries.
    public var subjectCommonName: String
    public var subjectOrganizations: [String]
    public var issuer: String
    /// Lower-case hex without leading zero bytes.
    public var serialNumber: String
    public var uriSANs: [String]
    public var dnsSANs: [String]
    /// SHA-256 of the DER, lower-case hex.
    public var sha256Digest: String
    /// Seconds since the epoch.
    public var validFrom: Int64
    public var expiration: Int64

    public init(der: [UInt8], pem: String, subject: String, subjectCommonName: String = "",
                subjectOrganizations: [String] = [], issuer: String, serialNumber: String,
                uriSANs: [String], dnsSANs: [String], sha256Digest: String, validFrom: Int64, expiration: Int64) {
        self.der = der
        self.pem = pem
        self.subject = subject
        self.subjectCommonName = subjectCommonName
        self.subjectOrganizations = subjectOrganizations
        self.issuer = issuer
        self.serialNumber = serialNumber
        self.uriSANs = uriSANs
        self.dnsSANs = dnsSANs
        self.sha256Digest = sha256Digest
        self.validFrom = validFrom
        self.expiration = expiration
    }

    /// Reads an OpenSSL `X509*` (not retained).
    package init?(x509 cert: OpaquePointer) {
        guard let der = Self.encodeDER({ i2d_X509(cert, $0) }) else { return nil }
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var digestLength: UInt32 = 0
        guard X509_digest(cert, EVP_sha256(), &digest, &digestLength) == 1 else { return nil }
        self.der = der
        pem = Self.pem(der)
        subject = Self.rfc2253(X509_get_subject_name(cert))
        subjectCommonName = Self.entries(X509_get_subject_name(cert), NID_commonName).first ?? ""
        subjectOrganizations = Self.entries(X509_get_subject_name(cert), NID_organizationName)
        issuer = Self.rfc2253(X509_get_issuer_name(cert))
        serialNumber = Self.serial(X509_get_serialNumber(cert))
        uriSANs = Self.names(cert, type: GEN_URI)
        dnsSANs = Self.names(cert, type: GEN_DNS)
        sha256Digest = Self.hex(digest.prefix(Int(digestLength)))
        validFrom = Self.seconds(X509_get0_notBefore(cert))
        expiration = Self.seconds(X509_get0_notAfter(cert))
    }

    /// The DER bytes an OpenSSL `i2d_*` function writes: `encode(nil)` gives the length,
    /// `encode(&cursor)` writes them.
    package static func encodeDER(_ encode: (UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?) -> Int32) -> [UInt8]? {
        let length = encode(nil)
        guard length > 0 else { return nil }
        var der = [UInt8](repeating: 0, count: Int(length))
        let written = der.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor = buffer.baseAddress
            return encode(&cursor)
        }
        return written == length ? der : nil
    }

    private static func pem(_ der: [UInt8]) -> String {
        let base64 = Array(Data(der).base64EncodedString().utf8)
        var text = "-----BEGIN CERTIFICATE-----\n"
        var i = 0
        while i < base64.count {
            text += String(decoding: base64[i..<min(i + 64, base64.count)], as: UTF8.self) + "\n"
            i += 64
        }
        return text + "-----END CERTIFICATE-----\n"
    }

    private static func rfc2253(_ name: OpaquePointer?) -> String {
        guard let name, let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        guard X509_NAME_print_ex(bio, name, 0, meshd_XN_FLAG_RFC2253()) >= 0 else { return "" }
        var data: UnsafeMutablePointer<CChar>?
        let count = meshd_BIO_get_mem_data(bio, &data)
        guard let data, count > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: count), as: UTF8.self)
    }

    /// The UTF-8 text of every entry of `nid` in `name`.
    private static func entries(_ name: OpaquePointer?, _ nid: Int32) -> [String] {
        guard let name else { return [] }
        var out: [String] = []
        var index: Int32 = -1
        while true {
            index = X509_NAME_get_index_by_NID(name, nid, index)
            guard index >= 0, let entry = X509_NAME_get_entry(name, index) else { break }
            var utf8: UnsafeMutablePointer<UInt8>?
            let length = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry))
            if let utf8, length >= 0 {
                out.append(String(decoding: UnsafeBufferPointer(start: utf8, count: Int(length)), as: UTF8.self))
            }
            if let utf8 { CRYPTO_free(utf8, nil, 0) }
        }
        return out
    }

    private static func serial(_ serial: UnsafePointer<ASN1_INTEGER>?) -> String {
        guard let serial, let bytes = ASN1_STRING_get0_data(serial) else { return "" }
        let all = UnsafeBufferPointer(start: bytes, count: Int(ASN1_STRING_length(serial)))
        let digits = hex(all.drop { $0 == 0 })
        return digits.isEmpty ? "0" : digits
    }

    private static func names(_ cert: OpaquePointer, type: Int32) -> [String] {
        guard let names = meshd_x509_subject_alt_names(cert) else { return [] }
        defer { meshd_general_names_free(names) }
        var out: [String] = []
        for i in 0..<max(0, meshd_general_names_count(names)) {
            var length: Int32 = 0
            guard let text = meshd_general_name_text(names, i, type, &length), length >= 0 else { continue }
            out.append(String(decoding: UnsafeBufferPointer(start: text, count: Int(length)), as: UTF8.self))
        }
        return out
    }

    private static func seconds(_ time: UnsafePointer<ASN1_TIME>?) -> Int64 {
        guard let time else { return 0 }
        var parts = tm()
        guard ASN1_TIME_to_tm(time, &parts) == 1 else { return 0 }
        return Int64(timegm(&parts))
    }

    package static func hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
