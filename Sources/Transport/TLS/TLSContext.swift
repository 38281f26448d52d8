import COpenSSL
import MeshAPI

/// The lowest TLS version a context accepts.
public enum TLSVersion: Sendable {
    case tls12, tls13

    package var openSSLValue: Int32 {
        switch self {
        case .tls12: return TLS1_2_VERSION
        case .tls13: return TLS1_3_VERSION
        }
    }
}

/// Server-side TLS settings shared by all downstream connections of a listener.
/// Immutable after init, so it may be shared across event loops.
public final class TLSServerContext: @unchecked Sendable {
    package let ctx: OpaquePointer
    /// Kept alive for the ALPN callback, which reaches it through a raw pointer.
    private let alpnPreferences: ALPNServerPreferences?
    public let alpnProtocols: [String]
    /// True when clients must present a certificate signed by the configured CAs.
    public let requiresClientCertificate: Bool
    /// The facts of the certificate this listener presents, read once.
    public let localCertificate: TLSCertificateFacts?

    /// - Parameter caCertificatesFile: when set, clients must present a certificate that
    ///   verifies against these CAs (mutual TLS).
    public init(certificateChainFile: String, privateKeyFile: String,
                alpnProtocols: [String] = ["h2", "http/1.1"],
                minimumVersion: TLSVersion = .tls12,
                caCertificatesFile: String? = nil) throws {
        let ctx = try TLSContextLoading.newContext(TLS_server_method())
        do {
            try TLSContextLoading.applyDefaults(ctx, minimumVersion: minimumVersion)
            try TLSContextLoading.useCertificateChain(ctx, file: certificateChainFile)
            try TLSContextLoading.usePrivateKey(ctx, file: privateKeyFile, certificateFile: certificateChainFile)
            _ = try ALPN.wireFormat(alpnProtocols)  // validates the names
            // Session resumption with client verification needs a session id context.
            let sessionContext = Array("meshd".utf8)
            _ = SSL_CTX_set_session_id_context(ctx, sessionContext, UInt32(sessionContext.count))
            if let caFile = caCertificatesFile {
                try TLSContextLoading.loadVerifyFile(ctx, file: caFile)
                // Tell clients which CAs we accept (the CertificateRequest's list).
                if let names = SSL_load_client_CA_file(caFile) {
                    SSL_CTX_set_client_CA_list(ctx, names)
                }
                SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
            } else {
                SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
            }
        } catch {
            SSL_CTX_free(ctx)
            throw error
        }
        self.ctx = ctx
        self.alpnProtocols = alpnProtocols
        self.requiresClientCertificate = caCertificatesFile != nil
        self.localCertificate = SSL_CTX_get0_certificate(ctx).flatMap { TLSCertificateFacts(x509: $0) }
        if alpnProtocols.isEmpty {
            self.alpnPreferences = nil
        } else {
            let preferences = ALPNServerPreferences(alpnProtocols)
            preferences.install(on: ctx)
            self.alpnPreferences = preferences
        }
        OpenSSLErrorQueue.clear()
    }

    deinit {
        // Handlers hold this context strongly and free their SSL first, so no SSL
        // still points at the ALPN preferences once this runs.
        SSL_CTX_free(ctx)
    }
}

/// Client-side TLS settings for upstream connections.
/// Immutable after init, so it may be shared across event loops.
public final class TLSClientContext: @unchecked Sendable {
    package let ctx: OpaquePointer
    public let verifyPeer: Bool
    public let alpnProtocols: [String]

    /// - Parameters:
    ///   - caCertificatesFile: trust anchors; without one (and with `verifyPeer`) the system's.
    ///   - certificateChainFile/privateKeyFile: a client certificate for mutual TLS (both or neither).
    public init(caCertificatesFile: String? = nil, verifyPeer: Bool = true,
                alpnProtocols: [String] = [],
                certificateChainFile: String? = nil, privateKeyFile: String? = nil) throws {
        let ctx = try TLSContextLoading.newContext(TLS_client_method())
        do {
            try TLSContextLoading.applyDefaults(ctx, minimumVersion: .tls12)
            if verifyPeer {
                if let caFile = caCertificatesFile {
                    try TLSContextLoading.loadVerifyFile(ctx, file: caFile)
                } else if SSL_CTX_set_default_verify_paths(ctx) != 1 {
                    throw TLSConfigurationError(operation: "cannot load the system CA certificates",
                                                reason: OpenSSLErrorQueue.drain(or: "unknown"))
                }
                SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
            } else {
                SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
            }
            switch (certificateChainFile, privateKeyFile) {
            case let (certificate?, key?):
                try TLSContextLoading.useCertificateChain(ctx, file: certificate)
                try TLSContextLoading.usePrivateKey(ctx, file: key, certificateFile: certificate)
            case (nil, nil):
                break
            case let (certificate, key):
                throw TLSConfigurationError(
                    operation: "a client certificate needs both a certificate chain and a private key",
                    file: certificate ?? key, reason: "the other file is missing")
            }
            if !alpnProtocols.isEmpty {
                let wire = try ALPN.wireFormat(alpnProtocols)
                // Unusually, this returns 0 on success.
                guard SSL_CTX_set_alpn_protos(ctx, wire, UInt32(wire.count)) == 0 else {
                    throw TLSConfigurationError(operation: "cannot set ALPN protocols",
                                                reason: OpenSSLErrorQueue.drain(or: "unknown"))
                }
            }
        } catch {
            SSL_CTX_free(ctx)
            throw error
        }
        self.ctx = ctx
        self.verifyPeer = verifyPeer
        self.alpnProtocols = alpnProtocols
        OpenSSLErrorQueue.clear()
    }

    deinit {
        SSL_CTX_free(ctx)
    }
}
