import COpenSSL
import MeshAPI

/// A TLS protocol version, as a bound of a context's range.
public enum TLSVersion: Sendable, Equatable {
    case tls10, tls11, tls12, tls13

    package var openSSLValue: Int32 {
        switch self {
        case .tls10: return TLS1_VERSION
        case .tls11: return TLS1_1_VERSION
        case .tls12: return TLS1_2_VERSION
        case .tls13: return TLS1_3_VERSION
        }
    }
}

/// Where a certificate, a key or a CA bundle comes from: a file, or PEM text in memory
/// (what the control plane pushes from its secret store).
public enum TLSMaterial: Sendable, Equatable {
    case file(String)
    case pem(String)
}

/// A certificate chain and its private key.
public struct TLSKeyPair: Sendable, Equatable {
    public var chain: TLSMaterial
    public var key: TLSMaterial

    public init(chain: TLSMaterial, key: TLSMaterial) {
        self.chain = chain
        self.key = key
    }
}

/// Everything one server context is made from.
public struct TLSServerConfiguration: Sendable {
    /// One, or two of different key types (RSA and ECDSA): OpenSSL serves the one the client supports.
    public var certificates: [TLSKeyPair]
    /// When set, clients are asked for a certificate these CAs signed.
    public var caCertificates: TLSMaterial?
    /// With `caCertificates`: refuse a client without a certificate (MUTUAL), or let it in (OPTIONAL_MUTUAL).
    public var requireClientCertificate = true
    public var alpnProtocols = ["h2", "http/1.1"]
    public var minimumVersion = TLSVersion.tls12
    public var maximumVersion: TLSVersion?
    /// OpenSSL cipher names for TLS 1.2 and lower; empty: OpenSSL's defaults.
    public var cipherSuites: [String] = []
    public var clientCertificateChecks = ClientCertificateChecks()

    public init(certificates: [TLSKeyPair], caCertificates: TLSMaterial? = nil) {
        self.certificates = certificates
        self.caCertificates = caCertificates
    }
}

/// Server-side TLS settings shared by all downstream connections of a listener (or of one
/// SNI entry of it). Immutable after init, so it may be shared across event loops.
public final class TLSServerContext: @unchecked Sendable {
    package let ctx: OpaquePointer
    /// Kept alive for the ALPN callback, which reaches it through a raw pointer.
    private let alpnPreferences: ALPNServerPreferences?
    /// Set on a context that only picks another per connection by SNI.
    private let serverNames: ServerNameSelector?
    public let alpnProtocols: [String]
    /// True when clients must present a certificate signed by the configured CAs.
    public let requiresClientCertificate: Bool
    /// The facts of the certificate this listener presents, read once.
    public let localCertificate: TLSCertificateFacts?
    /// What a client certificate must be beyond a verified chain (checked after the handshake).
    public let clientCertificateChecks: ClientCertificateChecks
    /// Per-connection settings an SSL copies from its context only when it is made: applied
    /// again when SNI switches a connection to this context.
    package let verifyMode: Int32
    package let versionRange: (min: Int32, max: Int32)
    package let cipherList: String?

    /// - Parameter caCertificatesFile: when set, clients must present a certificate that
    ///   verifies against these CAs (mutual TLS).
    public convenience init(certificateChainFile: String, privateKeyFile: String,
                            alpnProtocols: [String] = ["h2", "http/1.1"],
                            minimumVersion: TLSVersion = .tls12,
                            caCertificatesFile: String? = nil) throws {
        var configuration = TLSServerConfiguration(
            certificates: [.init(chain: .file(certificateChainFile), key: .file(privateKeyFile))],
            caCertificates: caCertificatesFile.map(TLSMaterial.file))
        configuration.alpnProtocols = alpnProtocols
        configuration.minimumVersion = minimumVersion
        try self.init(configuration)
    }

    public init(_ configuration: TLSServerConfiguration) throws {
        guard !configuration.certificates.isEmpty else {
            throw TLSConfigurationError(operation: "a server context needs a certificate", reason: "none given")
        }
        let ctx = try TLSContextLoading.newContext(TLS_server_method())
        var cipherList: String?
        do {
            try TLSContextLoading.applyDefaults(ctx, minimumVersion: configuration.minimumVersion)
            if let maximum = configuration.maximumVersion {
                try TLSContextLoading.setMaximumVersion(ctx, maximum)
            }
            if !configuration.cipherSuites.isEmpty {
                let list = configuration.cipherSuites.joined(separator: ":")
                try TLSContextLoading.setCipherList(ctx, list)
                cipherList = list
            }
            for certificate in configuration.certificates {
                try TLSContextLoading.useCertificate(ctx, certificate)
            }
            _ = try ALPN.wireFormat(configuration.alpnProtocols)  // validates the names
            // Session resumption with client verification needs a session id context.
            let sessionContext = Array("meshd".utf8)
            _ = SSL_CTX_set_session_id_context(ctx, sessionContext, UInt32(sessionContext.count))
            if let ca = configuration.caCertificates {
                // Also tells clients which CAs we accept (the CertificateRequest's list).
                try TLSContextLoading.trust(ctx, ca, advertise: true)
            }
        } catch {
            SSL_CTX_free(ctx)
            throw error
        }
        let verifyMode = configuration.caCertificates == nil ? SSL_VERIFY_NONE
            : configuration.requireClientCertificate ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER
        SSL_CTX_set_verify(ctx, verifyMode, nil)
        self.ctx = ctx
        self.serverNames = nil
        self.verifyMode = verifyMode
        self.versionRange = (configuration.minimumVersion.openSSLValue, configuration.maximumVersion?.openSSLValue ?? 0)
        self.cipherList = cipherList
        self.alpnProtocols = configuration.alpnProtocols
        self.requiresClientCertificate = configuration.caCertificates != nil && configuration.requireClientCertificate
        self.clientCertificateChecks = configuration.clientCertificateChecks
        self.localCertificate = SSL_CTX_get0_certificate(ctx).flatMap { TLSCertificateFacts(x509: $0) }
        self.alpnPreferences = TLSServerContext.installALPN(configuration.alpnProtocols, on: ctx)
        OpenSSLErrorQueue.clear()
    }

    /// A context that picks one of `entries` per connection by the client's SNI, as Envoy picks
    /// a filter chain by `server_names`: an exact name, then the longest `*.suffix`, then an
    /// entry without names; nothing matching refuses the handshake (alert unrecognized_name).
    public init(serverNameEntries entries: [(serverNames: [String], context: TLSServerContext)]) throws {
        let ctx = try TLSContextLoading.newContext(TLS_server_method())
        do {
            try TLSContextLoading.applyDefaults(ctx, minimumVersion: .tls12)
        } catch {
            SSL_CTX_free(ctx)
            throw error
        }
        let selector = ServerNameSelector(ServerNameTable(entries.map { (names: $0.serverNames, value: $0.context) }),
                                          contexts: entries.map(\.context))
        selector.install(on: ctx)
        self.ctx = ctx
        self.serverNames = selector
        self.verifyMode = SSL_VERIFY_NONE
        self.versionRange = (TLS1_2_VERSION, 0)
        self.cipherList = nil
        self.alpnProtocols = entries.first?.context.alpnProtocols ?? []
        self.requiresClientCertificate = entries.contains { $0.context.requiresClientCertificate }
        self.clientCertificateChecks = ClientCertificateChecks()
        self.localCertificate = nil
        self.alpnPreferences = nil
        OpenSSLErrorQueue.clear()
    }

    /// The context a connection of this one ended up with: the SNI entry whose SSL_CTX is `current`.
    package func selected(_ current: OpaquePointer?) -> TLSServerContext {
        guard let serverNames, let current else { return self }
        return serverNames.context(for: current) ?? self
    }

    private static func installALPN(_ protocols: [String], on ctx: OpaquePointer) -> ALPNServerPreferences? {
        guard !protocols.isEmpty else { return nil }
        let preferences = ALPNServerPreferences(protocols)
        preferences.install(on: ctx)
        return preferences
    }

    deinit {
        // Handlers hold this context strongly and free their SSL first, so no SSL
        // still points at the ALPN preferences or the SNI entries once this runs.
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
    public convenience init(caCertificatesFile: String? = nil, verifyPeer: Bool = true,
                            alpnProtocols: [String] = [],
                            certificateChainFile: String? = nil, privateKeyFile: String? = nil) throws {
        let certificate: TLSKeyPair?
        switch (certificateChainFile, privateKeyFile) {
        case let (chain?, key?):
            certificate = TLSKeyPair(chain: .file(chain), key: .file(key))
        case (nil, nil):
            certificate = nil
        case let (chain, key):
            throw TLSConfigurationError(
                operation: "a client certificate needs both a certificate chain and a private key",
                file: chain ?? key, reason: "the other file is missing")
        }
        try self.init(caCertificates: caCertificatesFile.map(TLSMaterial.file), verifyPeer: verifyPeer,
                      alpnProtocols: alpnProtocols, certificate: certificate)
    }

    /// - Parameters:
    ///   - caCertificates: trust anchors; without them (and with `verifyPeer`) the system's.
    ///   - certificate: a client certificate for mutual TLS.
    public init(caCertificates: TLSMaterial?, verifyPeer: Bool = true, alpnProtocols: [String] = [],
                certificate: TLSKeyPair?) throws {
        let ctx = try TLSContextLoading.newContext(TLS_client_method())
        do {
            try TLSContextLoading.applyDefaults(ctx, minimumVersion: .tls12)
            if verifyPeer {
                if let caCertificates {
                    try TLSContextLoading.trust(ctx, caCertificates, advertise: false)
                } else if SSL_CTX_set_default_verify_paths(ctx) != 1 {
                    throw TLSConfigurationError(operation: "cannot load the system CA certificates",
                                                reason: OpenSSLErrorQueue.drain(or: "unknown"))
                }
                SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
            } else {
                SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
            }
            if let certificate { try TLSContextLoading.useCertificate(ctx, certificate) }
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
