#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import Transport

/// The mesh CA (Istio's Citadel, inside istiod): signs workload certificates with either a
/// self-signed root it creates on first start, or a plug-in CA in Istio's `cacerts` layout.
///
/// State directory layout:
/// - `cacerts/{ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem}`: a plug-in CA, used
///   when present (Istio's `cacerts` secret; ca-cert signs, cert-chain is ca-cert up to the root).
/// - `ca/{ca-cert.pem, ca-key.pem}`: the self-signed root, created once (Istio's `istio-ca-secret`).
/// - `token-key`: the HMAC key of bootstrap tokens.
public final class CertificateAuthority: Sendable {
    public let trustDomain: String
    /// The root(s) proxies verify peers with (PEM).
    public let rootPEM: String
    /// Certificates between a leaf and the root, signing CA first (PEM, root excluded for a self-signed CA).
    public let intermediatesPEM: [String]
    private let signingCertificate: X509Certificate
    private let signingKey: PrivateKey
    let tokenKey: [UInt8]
    /// "self-signed" or "plug-in (<dir>)".
    public let origin: String

    /// Istio's defaults: a 10-year self-signed root, 24 h workload certificates.
    public static let rootValidity: TimeInterval = 10 * 365 * 86_400
    public static let defaultWorkloadTTL: TimeInterval = 86_400

    public init(stateDirectory: String, trustDomain: String) throws {
        self.trustDomain = trustDomain
        let fm = FileManager.default
        try fm.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let plugIn = stateDirectory + "/cacerts"
        if fm.fileExists(atPath: plugIn + "/ca-key.pem") {
            func read(_ name: String) throws -> String {
                do { return try String(contentsOfFile: plugIn + "/" + name, encoding: .utf8) } catch {
                    throw CryptoError(plain: "plug-in CA \(plugIn): cannot read \(name): \(error.plainDescription)")
                }
            }
            signingCertificate = try X509Certificate(pem: try read("ca-cert.pem"))
            signingKey = try PrivateKey(pem: try read("ca-key.pem"))
            rootPEM = try read("root-cert.pem")
            // cert-chain.pem runs from ca-cert.pem to the root; leaves carry all but the root.
            let roots = Set(try X509Certificate.chain(pem: rootPEM).map(\.pem))
            intermediatesPEM = try X509Certificate.chain(pem: try read("cert-chain.pem")).map(\.pem).filter { !roots.contains($0) }
            origin = "plug-in (\(plugIn))"
        } else {
            let dir = stateDirectory + "/ca"
            if fm.fileExists(atPath: dir + "/ca-key.pem") {
                signingCertificate = try X509Certificate(pem: try String(contentsOfFile: dir + "/ca-cert.pem", encoding: .utf8))
                signingKey = try PrivateKey(pem: try String(contentsOfFile: dir + "/ca-key.pem", encoding: .utf8))
            } else {
                let key = try PrivateKey.generate()
                let now = Date()
                signingCertificate = try X509Certificate.issue(
                    publicKeyOf: key.pointer, subject: [("O", trustDomain)], profile: .certificateAuthority,
                    notBefore: now.addingTimeInterval(-60), notAfter: now.addingTimeInterval(Self.rootValidity),
                    issuer: nil, selfKey: key)
                signingKey = key
                try fm.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                try Self.writePrivate(dir + "/ca-key.pem", key.pem)
                try signingCertificate.pem.write(toFile: dir + "/ca-cert.pem", atomically: true, encoding: .utf8)
            }
            rootPEM = signingCertificate.pem
            intermediatesPEM = []
            origin = "self-signed (\(dir))"
        }
        guard signingCertificate.matches(signingKey) else {
            throw CryptoError(plain: "the CA certificate and key in \(stateDirectory) do not belong together")
        }
        let keyFile = stateDirectory + "/token-key"
        if let existing = fm.contents(atPath: keyFile), existing.count >= 32 {
            tokenKey = Array(existing)
        } else {
            tokenKey = try HMACSHA256.randomBytes(32)
            try Self.writePrivate(keyFile, Data(tokenKey))
        }
    }

    /// SHA-256 of the root's DER, lower-case hex (what `proxy-config secret` shows).
    public var rootFingerprint: String {
        ((try? X509Certificate(pem: rootPEM))?.facts?.sha256Digest) ?? ""
    }

    /// Signs a leaf for `csr`'s key, with exactly `subjectAltNames` (config syntax: "URI:…").
    /// Returns the chain: leaf, then intermediates.
    public func issue(for csr: CertificateSigningRequest, subjectAltNames: [String], ttl: TimeInterval,
                      commonName: String? = nil) throws -> [String] {
        guard let key = csr.publicKey else { throw CryptoError(plain: "the request has no public key") }
        let now = Date()
        // A minute of back-dating absorbs clock skew between the control plane and proxies.
        let leaf = try X509Certificate.issue(publicKeyOf: key, subject: commonName.map { [("CN", $0)] } ?? [],
                                             profile: .leaf(subjectAltNames: subjectAltNames),
                                             notBefore: now.addingTimeInterval(-60), notAfter: now.addingTimeInterval(ttl),
                                             issuer: (signingCertificate, signingKey))
        return [leaf.pem] + intermediatesPEM
    }

    /// A serving certificate for the control plane's own TLS discovery port (from the same CA,
    /// so proxies verify it with the mesh root): key and chain PEM.
    public func servingCertificate(names: [String], ttl: TimeInterval) throws -> (chain: String, key: String) {
        let key = try PrivateKey.generate()
        let csr = try CertificateSigningRequest(key: key, uri: "spiffe://\(trustDomain)/ns/istio-system/sa/meshd-control-plane")
        let sans = names.map { name in
            name.contains(":") || name.allSatisfy({ $0.isNumber || $0 == "." }) ? "IP:" + name : "DNS:" + name
        } + ["URI:spiffe://\(trustDomain)/ns/istio-system/sa/meshd-control-plane"]
        return (try issue(for: csr, subjectAltNames: sans, ttl: ttl, commonName: "meshd-control-plane").joined(), key.pem)
    }

    static func writePrivate(_ path: String, _ text: String) throws { try writePrivate(path, Data(text.utf8)) }

    static func writePrivate(_ path: String, _ data: Data) throws {
        guard FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw CryptoError(plain: "cannot write \(path)")
        }
    }
}
