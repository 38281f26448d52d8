#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import MeshAPI
import NIOConcurrencyHelpers
import Transport

/// The proxy's half of the CA (pilot-agent's SDS role): makes a fresh key and a CSR for the
/// identity its bootstrap token names, installs what the control plane signs, and asks again
/// when half the certificate's life is gone (Istio's SECRET_GRACE_PERIOD_RATIO, 0.5), so the
/// new one is in place long before the old one expires.
public final class CertificateAgent: Sendable {
    public let tokenFile: String
    public let claims: BootstrapToken
    /// Asked-for lifetime in seconds (0: the control plane's default).
    public let requestedTTL: Int64
    public let certificates: WorkloadCertificates
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    /// Istio's SECRET_GRACE_PERIOD_RATIO.
    public static let rotationRatio = 0.5

    struct State {
        /// The key of the request in flight; it never leaves this process.
        var pendingKey: PrivateKey?
        var requestedAt = Date.distantPast
        var token = ""
        var rotateAt: Date?
        var lastError: String?
        var issued = 0
    }

    public init(tokenFile: String, requestedTTL: Int64 = 0, certificates: WorkloadCertificates = .shared, logger: Logger) throws {
        let token: String
        do { token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmed } catch {
            throw ConfigError(path: "--token-file", reason: "cannot read \(tokenFile): \(error.plainDescription)")
        }
        guard let claims = BootstrapToken.unverifiedClaims(token) else {
            throw ConfigError(path: "--token-file", reason: "\(tokenFile) does not hold a meshd bootstrap token (meshd control-plane token)")
        }
        self.tokenFile = tokenFile
        self.claims = claims
        self.requestedTTL = requestedTTL
        self.certificates = certificates
        self.logger = logger
        state.withLockedValue { $0.token = token }
    }

    /// True when there is no certificate yet or it is past its rotation time.
    public var needsCertificate: Bool {
        state.withLockedValue { s in s.rotateAt.map { Date() >= $0 } ?? true }
    }

    /// Why the proxy is not ready as far as identity goes, or nil.
    public var notReadyReason: String? {
        guard certificates.current == nil else { return nil }
        let error = state.withLockedValue { $0.lastError }
        return "no workload certificate yet for \(claims.spiffeID)" + (error.map { ": \($0)" } ?? "")
    }

    /// A new key and the request for it; nil while another request is in flight (answers
    /// come within seconds: one older than 10 s is taken as lost with its stream).
    public func makeRequest(now: Date = Date()) throws -> Meshd_Discovery_V1_CertificateRequest? {
        let busy = state.withLockedValue { $0.pendingKey != nil && now.timeIntervalSince($0.requestedAt) < 10 }
        if busy { return nil }
        let key = try PrivateKey.generate()
        let csr = try CertificateSigningRequest(key: key, uri: claims.spiffeID)
        state.withLockedValue {
            $0.pendingKey = key
            $0.requestedAt = now
        }
        var request = Meshd_Discovery_V1_CertificateRequest()
        request.csr = csr.pem
        request.token = currentToken()
        request.validitySeconds = requestedTTL
        return request
    }

    /// The token file is read at each request, so a token refreshed in place is used at the
    /// next rotation; a file caught mid-rewrite (not a token) leaves the last good one in use.
    private func currentToken() -> String {
        let text = (try? String(contentsOfFile: tokenFile, encoding: .utf8))?.trimmed ?? ""
        return state.withLockedValue { s in
            if BootstrapToken.unverifiedClaims(text) != nil { s.token = text }
            return s.token
        }
    }

    /// Installs an answer; returns when to ask next (rotation, or a retry after a refusal).
    public func received(_ response: Meshd_Discovery_V1_CertificateResponse, now: Date = Date()) -> TimeInterval {
        let key = state.withLockedValue { s -> PrivateKey? in
            defer { s.pendingKey = nil }
            return s.pendingKey
        }
        if response.hasError {
            return failed("the control plane refused the certificate request: \(response.error.message)")
        }
        guard let key else { return failed("a certificate arrived with no request in flight") }
        do {
            try certificates.install(chain: response.certChain, rootPEM: response.rootCert, key: key)
        } catch {
            return failed("cannot use the issued certificate: \(error)")
        }
        guard let issued = certificates.current else { return failed("no certificate after install") }
        let expires = Date(timeIntervalSince1970: TimeInterval(issued.leaf.expiration))
        // From what this proxy saw (the issuer may back-date notBefore for clock skew).
        let wait = max(1, expires.timeIntervalSince(now) * Self.rotationRatio)
        state.withLockedValue {
            $0.rotateAt = now.addingTimeInterval(wait)
            $0.lastError = nil
            $0.issued += 1
        }
        logger.info("workload certificate installed", metadata: [
            "identity": "\(issued.spiffeID ?? "?")", "serial": "\(issued.leaf.serialNumber)",
            "not_after": "\(issued.leaf.expiration)", "rotate_in_s": "\(Int(wait))"])
        return wait
    }

    private func failed(_ why: String) -> TimeInterval {
        state.withLockedValue { $0.lastError = why }
        logger.error("workload certificate", metadata: ["error": "\(why)"])
        // Retry soon, but not in a tight loop; the current certificate (if any) keeps serving.
        return 5
    }
}
