#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import MeshAPI
import Transport

/// Answers a proxy's certificate request (Istio's CreateCertificate): the bootstrap token
/// must verify, name the identity the proxy registered with, and the CSR must be signed by
/// its key and ask for exactly that SPIFFE ID. Every refusal is logged with its reason.
public struct CertificateSigner: Sendable {
    public let authority: CertificateAuthority
    public let defaultTTL: TimeInterval
    private let logger: Logger

    public init(authority: CertificateAuthority, defaultTTL: TimeInterval = CertificateAuthority.defaultWorkloadTTL, logger: Logger) {
        self.authority = authority
        self.defaultTTL = defaultTTL
        self.logger = logger
    }

    public enum Refusal: Error, CustomStringConvertible {
        case token(BootstrapToken.Refusal)
        case identityMismatch(String)
        case badRequest(String)

        public var description: String {
            switch self {
            case .token(let r): return "bootstrap token refused: \(r)"
            case .identityMismatch(let why), .badRequest(let why): return why
            }
        }
    }

    /// The identity a token proves, or why it proves nothing.
    public func verify(token: String, now: Date = Date()) -> Result<SPIFFEIdentity, Refusal> {
        switch BootstrapToken.verify(token, key: authority.tokenKey, now: now) {
        case .success(let claims):
            guard claims.trustDomain == authority.trustDomain else {
                return .failure(.identityMismatch("the token is for trust domain \(claims.trustDomain), this CA serves \(authority.trustDomain)"))
            }
            return .success(SPIFFEIdentity(trustDomain: authority.trustDomain, namespace: claims.namespace,
                                           serviceAccount: claims.serviceAccount))
        case .failure(let r):
            return .failure(.token(r))
        }
    }

    /// A signed bootstrap token for `namespace`/`serviceAccount` (`meshd control-plane token`).
    public func token(namespace: String, serviceAccount: String, ttl: TimeInterval, now: Date = Date()) throws -> String {
        try BootstrapToken(trustDomain: authority.trustDomain, namespace: namespace, serviceAccount: serviceAccount,
                           expires: Int64(now.timeIntervalSince1970 + ttl)).signed(key: authority.tokenKey)
    }

    /// Signs, or refuses with a reason; `node` is who the stream registered as.
    public func sign(_ request: Meshd_Discovery_V1_CertificateRequest, node: Meshd_Discovery_V1_Node,
                     now: Date = Date()) -> Result<[String], Refusal> {
        let result = signUnlogged(request, node: node, now: now)
        switch result {
        case .success(let chain):
            let facts = try? X509Certificate(pem: chain[0]).facts
            logger.info("issued workload certificate", metadata: [
                "proxy": "\(node.id)", "identity": "\(facts?.uriSANs.first ?? "?")",
                "serial": "\(facts?.serialNumber ?? "?")", "not_after": "\(facts?.expiration ?? 0)"])
        case .failure(let refusal):
            logger.warning("refused certificate request", metadata: [
                "proxy": "\(node.id)", "namespace": "\(node.namespace)", "service_account": "\(node.serviceAccount)",
                "reason": "\(refusal)"])
        }
        return result
    }

    private func signUnlogged(_ request: Meshd_Discovery_V1_CertificateRequest, node: Meshd_Discovery_V1_Node,
                              now: Date) -> Result<[String], Refusal> {
        let identity: SPIFFEIdentity
        switch verify(token: request.token, now: now) {
        case .success(let id): identity = id
        case .failure(let r): return .failure(r)
        }
        let claimedSA = node.serviceAccount.isEmpty ? SPIFFEIdentity.defaultServiceAccount : node.serviceAccount
        let claimedNS = node.namespace.isEmpty ? "default" : node.namespace
        guard claimedNS == identity.namespace, claimedSA == identity.serviceAccount else {
            return .failure(.identityMismatch(
                "the proxy registered as ns/\(claimedNS)/sa/\(claimedSA) but its token proves \(identity.uri)"))
        }
        let csr: CertificateSigningRequest
        do { csr = try CertificateSigningRequest(pem: request.csr) } catch {
            return .failure(.badRequest("the CSR does not parse: \(error)"))
        }
        guard csr.signatureIsValid else { return .failure(.badRequest("the CSR's signature does not verify")) }
        let asked = csr.uriSANs
        guard asked == [identity.uri] else {
            return .failure(.identityMismatch("the CSR asks for \(asked) but the token proves \(identity.uri)"))
        }
        let ttl = request.validitySeconds > 0 ? min(TimeInterval(request.validitySeconds), defaultTTL) : defaultTTL
        do {
            return .success(try authority.issue(for: csr, subjectAltNames: ["URI:" + identity.uri], ttl: ttl))
        } catch {
            return .failure(.badRequest("cannot sign: \(error)"))
        }
    }

    /// The protobuf answer to a request.
    public func respond(_ request: Meshd_Discovery_V1_CertificateRequest, node: Meshd_Discovery_V1_Node) -> Meshd_Discovery_V1_CertificateResponse {
        var response = Meshd_Discovery_V1_CertificateResponse()
        response.rootCert = authority.rootPEM
        switch sign(request, node: node) {
        case .success(let chain):
            response.certChain = chain
        case .failure(let refusal):
            response.error.code = Int32(GRPCStatusCode.permissionDenied.rawValue)
            response.error.message = refusal.description
        }
        return response
    }
}
