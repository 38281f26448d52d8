import Foundation
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
        let directory: String
        /// Server contexts by ALPN list; client contexts by HTTP/2 or not.
        let servers: [[String]: TLSServerContext]
        let clients: [Bool: TLSClientContext]

        public var spiffeID: String? { leaf.uriSANs.first { $0.hasPrefix("spiffe://") } }
    }

    private let state = NIOLockedValueBox<Issued?>(nil)
    private let directory = NIOLockedValueBox<String?>(nil)

    public var current: Issued? { state.withLockedValue { $0 } }

    /// Installs a new certificate: the key stays in this process (and a 0700 directory of its own,
    /// which OpenSSL's file-based loading reads); every context is built before the swap.
    public func install(chain: [String], rootPEM: String, key: PrivateKey) throws {
        guard let leafPEM = chain.first else { throw CryptoError(plain: "the control plane sent an empty certificate chain") }
        let leaf = try X509Certificate(pem: leafPEM)
        guard leaf.matches(key) else { throw CryptoError(plain: "the issued certificate is not for this proxy's key") }
        guard let leafFacts = leaf.facts, let rootFacts = try X509Certificate.chain(pem: rootPEM).first?.facts else {
            throw CryptoError(plain: "cannot read the issued certificate or the root")
        }
        let generation = (current?.generation ?? 0) + 1
        let dir = try privateDirectory()
        let chainFile = dir + "/cert-chain-\(generation).pem", keyFile = dir + "/key-\(generation).pem"
        let rootFile = dir + "/root-cert-\(generation).pem"
        try write(chainFile, chain.joined())
        try write(keyFile, key.pem)
        try write(rootFile, rootPEM)
        defer {
            // Contexts hold what they loaded; the files are not needed after.
            for f in [chainFile, keyFile, rootFile] { try? FileManager.default.removeItem(atPath: f) }
        }
        var servers: [[String]: TLSServerContext] = [:]
        for alpn in [["h2", "http/1.1"], ["http/1.1"], ["h2"]] {
            servers[alpn] = try TLSServerContext(certificateChainFile: chainFile, privateKeyFile: keyFile,
                                                 alpnProtocols: alpn, caCertificatesFile: rootFile)
        }
        var clients: [Bool: TLSClientContext] = [:]
        for http2 in [false, true] {
            clients[http2] = try TLSClientContext(caCertificatesFile: rootFile, verifyPeer: true,
                                                  alpnProtocols: http2 ? ["h2"] : ["http/1.1"],
                                                  certificateChainFile: chainFile, privateKeyFile: keyFile)
        }
        let issued = Issued(generation: generation, leaf: leafFacts, root: rootFacts, chainPEM: chain.joined(),
                            rootPEM: rootPEM, directory: dir, servers: servers, clients: clients)
        state.withLockedValue { $0 = issued }
    }

    /// The context an inbound mesh listener serves with (client certificates required), or nil
    /// before the first certificate.
    public func serverContext(alpn: [String]) -> TLSServerContext? {
        state.withLockedValue { s in s.flatMap { $0.servers[alpn] ?? $0.servers[["h2", "http/1.1"]] } }
    }

    /// The context for mutual TLS to another mesh workload, or nil before the first certificate.
    public func clientContext(http2: Bool) -> TLSClientContext? {
        state.withLockedValue { $0?.clients[http2] }
    }

    private func privateDirectory() throws -> String {
        try directory.withLockedValue { dir in
            if let dir { return dir }
            var template = Array((NSTemporaryDirectory() + "/meshd-identity-XXXXXX").utf8CString)
            guard let made = mkdtemp(&template) else { throw CryptoError(plain: "cannot create a private directory") }
            let path = String(cString: made)
            dir = path
            return path
        }
    }

    private func write(_ path: String, _ text: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw CryptoError(plain: "cannot write \(path)")
        }
    }
}
