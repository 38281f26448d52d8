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
        let c = try TLSClientContext(caCertificatesFile: tls.caCertificates, verifyPeer: !(tls.insecureSkipVerify ?? false),
                                     alpnProtocols: http2 ? ["h2"] : ["http/1.1"],
                                     certificateChainFile: tls.certificateChain, privateKeyFile: tls.privateKey)
        cache.withLockedValue { $0[key] = c }
        return c
    }
}
