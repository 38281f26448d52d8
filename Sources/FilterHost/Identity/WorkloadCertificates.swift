#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOConcurrencyHelpers
import Transport

/// This proxy's workload certificate (its SVID), the mesh root, and the TLS contexts made
/// from them. Replaced whole on rotation: connections already open keep the context they
/// were made with, new ones take the newest, so a rotation drops nothing.
/// One per process, like the upstream TLS context cache (a process is one proxy).
public final class WorkloadCertificates: Sendable {
    public static let shared = WorkloadCertificates()

    /// One issued certificate and everything made from it.
    public struct Issued: Sendable {
        public let generation: Int
        public let leaf: TLSCertificateFacts
        public let root: TLSCertificateFacts
        public let chainPEM: String
        public let rootPEM: String
        /// Server contexts by ALPN list; client contexts by what they carry.
        let servers: [[String]: TLSServerContext]
        let clients: [MeshApplication: TLSClientContext]

        public var spiffeID: String? { leaf.uriSANs.first { $0.hasPrefix("spiffe://") } }
    }

    private let state = NIOLockedValueBox<Issued?>(nil)

    public var current: Issued? { state.withLockedValue { $0 } }

    /// Installs a new certificate: the key never leaves this process (OpenSSL loads it from
    /// memory); every context is built before the swap.
    public func install(chain: [String], rootPEM: String, key: PrivateKey) throws {
        guard let leafPEM = chain.first else { throw CryptoError(plain: "the control plane sent an empty certificate chain") }
        let leaf = try X509Certificate(pem: leafPEM)
        guard leaf.matches(key) else { throw CryptoError(plain: "the issued certificate is not for this proxy's key") }
        guard let leafFacts = leaf.facts, let rootFacts = try X509Certificate.chain(pem: rootPEM).first?.facts else {
            throw CryptoError(plain: "cannot read the issued certificate or the root")
        }
        let generation = (current?.generation ?? 0) + 1
        let pair = TLSKeyPair(chain: .pem(chain.joined()), key: .pem(key.pem))
        var servers: [[String]: TLSServerContext] = [:]
        for alpn in [["h2", "http/1.1"], ["http/1.1"], ["h2"], MeshApplication.bytesOrHTTPServerALPN] {
            var configuration = TLSServerConfiguration(certificates: [pair], caCertificates: .pem(rootPEM))
            configuration.alpnProtocols = alpn
            servers[alpn] = try TLSServerContext(configuration)
        }
        var clients: [MeshApplication: TLSClientContext] = [:]
        for application in MeshApplication.allCases {
            clients[application] = try TLSClientContext(caCertificates: .pem(rootPEM), verifyPeer: true,
                                                        alpnProtocols: application.alpn, certificate: pair)
        }
        let issued = Issued(generation: generation, leaf: leafFacts, root: rootFacts, chainPEM: chain.joined(),
                            rootPEM: rootPEM, servers: servers, clients: clients)
        state.withLockedValue { $0 = issued }
    }

    /// The context an inbound mesh listener serves with (client certificates required), or nil
    /// before the first certificate.
    public func serverContext(alpn: [String]) -> TLSServerContext? {
        state.withLockedValue { s in s.flatMap { $0.servers[alpn] ?? $0.servers[["h2", "http/1.1"]] } }
    }

    /// The context for mutual TLS to another mesh workload, or nil before the first certificate.
    public func clientContext(http2: Bool) -> TLSClientContext? {
        clientContext(for: http2 ? .http2 : .http1)
    }

    public func clientContext(for application: MeshApplication) -> TLSClientContext? {
        state.withLockedValue { $0?.clients[application] }
    }
}

/// What a mesh mTLS connection carries, as its ALPN tells the peer's inbound listener
/// (Istio's: `istio-peer-exchange`/`istio` for TCP, which its inbound filter chains tell
/// apart from HTTP's; meshd offers the plain HTTP names for HTTP).
public enum MeshApplication: Sendable, Hashable, CaseIterable {
    case http1, http2, bytes

    public var alpn: [String] {
        switch self {
        case .http1: ["http/1.1"]
        case .http2: ["h2"]
        case .bytes: Self.bytesALPN
        }
    }

    /// Istio's ALPN for TCP over mesh mTLS.
    public static let bytesALPN = ["istio-peer-exchange", "istio"]
    /// An inbound listener that serves both HTTP and bytes.
    public static let bytesOrHTTPServerALPN = ["h2", "http/1.1"] + bytesALPN
}
