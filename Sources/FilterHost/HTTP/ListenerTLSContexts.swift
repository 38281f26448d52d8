import MeshAPI
import Transport

/// The server TLS contexts of a snapshot's listeners, built with the snapshot (a certificate
/// that does not load refuses the config) and taken by each accept from the loop's current
/// snapshot: a rotated certificate serves from the next connection on, without a rebind.
enum ListenerTLSContexts {
    /// Contexts by listener name. A listener whose TLS did not change since `previous` keeps its context.
    static func build(_ listeners: [Listener], previous: ProxySnapshot?) throws -> [String: TLSServerContext] {
        var out: [String: TLSServerContext] = [:]
        for (i, l) in listeners.enumerated() {
            let entries = l.serverTLS
            guard !entries.isEmpty else { continue }
            if let before = previous?.listener(named: l.name), before.serverTLS == entries,
               let kept = previous?.serverTLSContexts[l.name] {
                out[l.name] = kept
                continue
            }
            out[l.name] = try context(l, path: "listeners[\(i)]")
        }
        return out
    }

    static func context(_ l: Listener, path: String) throws -> TLSServerContext {
        if l.tls != nil, l.tlsByServerName != nil {
            throw ConfigError(path: path + ".tlsByServerName", reason: "set tls or tlsByServerName, not both")
        }
        guard let entries = l.tlsByServerName else {
            return try make(l.tls!, path: path + ".tls")
        }
        guard !entries.isEmpty else { throw ConfigError(path: path + ".tlsByServerName", reason: "needs at least one entry") }
        var contexts: [(serverNames: [String], context: TLSServerContext)] = []
        for (j, e) in entries.enumerated() {
            let context = try make(e, path: "\(path).tlsByServerName[\(j)]")
            contexts.append((serverNames: e.serverNames ?? [], context: context))
        }
        do {
            return try TLSServerContext(serverNameEntries: contexts)
        } catch {
            throw ConfigError(path: path + ".tlsByServerName", reason: "\(error)")
        }
    }

    private static func make(_ tls: ListenerTLS, path: String) throws -> TLSServerContext {
        do {
            return try TLSServerContext(configuration(tls, path: path))
        } catch let e as ConfigError {
            throw e
        } catch {
            throw ConfigError(path: path, reason: "\(error)")
        }
    }

    static func configuration(_ tls: ListenerTLS, path: String) throws -> TLSServerConfiguration {
        var certificates: [TLSKeyPair] = []
        switch (tls.certificateChain, tls.privateKey) {
        case let (chain?, key?): certificates.append(.init(chain: .file(chain), key: .file(key)))
        case (nil, nil): break
        default: throw ConfigError(path: path, reason: "certificateChain and privateKey go together")
        }
        certificates += (tls.certificates ?? []).map { .init(chain: .pem($0.certificateChain), key: .pem($0.privateKey)) }
        guard !certificates.isEmpty else {
            throw ConfigError(path: path, reason: "needs a certificate (certificateChain and privateKey, or certificates)")
        }
        guard certificates.count <= 2 else {
            throw ConfigError(path: path + ".certificates", reason: "at most two certificates (one RSA, one ECDSA)")
        }
        if tls.caCertificates != nil, tls.caCertificatesPEM != nil {
            throw ConfigError(path: path + ".caCertificatesPEM", reason: "set caCertificates or caCertificatesPEM, not both")
        }
        var c = TLSServerConfiguration(certificates: certificates,
                                       caCertificates: tls.caCertificates.map(TLSMaterial.file) ?? tls.caCertificatesPEM.map(TLSMaterial.pem))
        c.requireClientCertificate = tls.requireClientCertificate ?? true
        c.alpnProtocols = tls.alpn ?? ["h2", "http/1.1"]
        if let v = tls.minProtocolVersion { c.minimumVersion = v.transport }
        c.maximumVersion = tls.maxProtocolVersion?.transport
        if let lo = tls.minProtocolVersion, let hi = tls.maxProtocolVersion,
           TLSProtocolVersion.allCases.firstIndex(of: lo)! > TLSProtocolVersion.allCases.firstIndex(of: hi)! {
            throw ConfigError(path: path + ".maxProtocolVersion", reason: "\(hi.rawValue) is below minProtocolVersion \(lo.rawValue)")
        }
        c.cipherSuites = tls.cipherSuites ?? []
        c.clientCertificateChecks = ClientCertificateChecks(subjectAltNames: tls.subjectAltNames ?? [],
                                                            spkiSHA256: tls.verifyCertificateSpki ?? [],
                                                            certificateSHA256: tls.verifyCertificateHash ?? [])
        if !c.clientCertificateChecks.isEmpty, c.caCertificates == nil {
            throw ConfigError(path: path, reason: "client certificate checks need caCertificates (the client is not asked for a certificate without them)")
        }
        return c
    }
}

extension TLSProtocolVersion {
    var transport: TLSVersion {
        switch self {
        case .tls10: .tls10
        case .tls11: .tls11
        case .tls12: .tls12
        case .tls13: .tls13
        }
    }
}
