import COpenSSL
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a client certificate must be beyond a chain that verifies (Envoy's
/// `CertificateValidationContext`): one of `subjectAltNames` (URI or DNS, exact), and when
/// pins are given, a SubjectPublicKeyInfo SHA-256 (base64) or certificate SHA-256 (hex) among
/// them (either list matching is enough, as in Envoy).
public struct ClientCertificateChecks: Sendable, Equatable {
    public var subjectAltNames: [String]
    public var spkiSHA256: [String]
    /// Lowercase hex without colons.
    public var certificateSHA256: [String]

    public init(subjectAltNames: [String] = [], spkiSHA256: [String] = [], certificateSHA256: [String] = []) {
        self.subjectAltNames = subjectAltNames
        self.spkiSHA256 = spkiSHA256
        self.certificateSHA256 = certificateSHA256.map { $0.replacing(":", with: "").lowercased() }
    }

    public var isEmpty: Bool { subjectAltNames.isEmpty && spkiSHA256.isEmpty && certificateSHA256.isEmpty }

    /// Why `peer` is refused, or nil when it passes (or nothing is asked). No certificate
    /// passes: whether one is required is the context's verify mode.
    package func refusal(_ peer: OpaquePointer?) -> String? {
        guard !isEmpty, let peer, let facts = TLSCertificateFacts(x509: peer) else { return nil }
        if !subjectAltNames.isEmpty {
            let presented = facts.uriSANs + facts.dnsSANs
            if !presented.contains(where: subjectAltNames.contains) {
                return "client certificate SANs \(presented) match none of \(subjectAltNames)"
            }
        }
        guard !spkiSHA256.isEmpty || !certificateSHA256.isEmpty else { return nil }
        if certificateSHA256.contains(facts.sha256Digest.replacing(":", with: "").lowercased()) { return nil }
        if let spki = Self.spkiDigest(peer), spkiSHA256.contains(Data(spki).base64EncodedString()) { return nil }
        return "client certificate matches no verifyCertificateSpki or verifyCertificateHash pin"
    }

    /// SHA-256 of the certificate's DER SubjectPublicKeyInfo.
    static func spkiDigest(_ cert: OpaquePointer) -> [UInt8]? {
        guard let key = X509_get_X509_PUBKEY(cert), let der = TLSCertificateFacts.encodeDER({ i2d_X509_PUBKEY(key, $0) }) else { return nil }
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var digestLength: UInt32 = 0
        guard EVP_Digest(der, der.count, &digest, &digestLength, EVP_sha256(), nil) == 1 else { return nil }
        return Array(digest.prefix(Int(digestLength)))
    }
}
