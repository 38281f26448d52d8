import MeshAPI
import NIOConcurrencyHelpers
import Transport

/// Upstream TLS contexts, made once per distinct cluster TLS setting and shared by every loop.
final class UpstreamTLSContexts: Sendable {
    static let shared = UpstreamTLSContexts()

    private struct Key: Hashable {
        let tls: UpstreamTLS
        let http2: Bool
    }
    private let cache = NIOLockedValueBox<[Key: TLSClientContext]>([:])

    func context(for tls: UpstreamTLS, http2: Bool) throws -> TLSClientContext {
        let key = Key(tls: tls, http2: http2)
        if let c = cache.withLockedValue({ $0[key] }) { return c }
        let c = try TLSClientContext(caCertificates: tls.caCertificatesPEM.map(TLSMaterial.pem) ?? tls.caCertificates.map(TLSMaterial.file),
                                     verifyPeer: !(tls.insecureSkipVerify ?? false), alpnProtocols: http2 ? ["h2"] : ["http/1.1"],
                                     certificate: try Self.certificate(tls))
        cache.withLockedValue { $0[key] = c }
        return c
    }

    /// The client certificate: PEM text (pushed from the control plane's secret store) or files.
    private static func certificate(_ tls: UpstreamTLS) throws -> TLSKeyPair? {
        switch (tls.certificateChainPEM, tls.privateKeyPEM, tls.certificateChain, tls.privateKey) {
        case let (chain?, key?, _, _): return TLSKeyPair(chain: .pem(chain), key: .pem(key))
        case let (nil, nil, chain?, key?): return TLSKeyPair(chain: .file(chain), key: .file(key))
        case (nil, nil, nil, nil): return nil
        default:
            throw TLSConfigurationError(operation: "a client certificate needs both a certificate chain and a private key",
                                        reason: "one of them is missing")
        }
    }
}
