import MeshAPI
import Transport

/// A Gateway HTTPS server's TLS (SIMPLE, MUTUAL, OPTIONAL_MUTUAL) as a listener TLS entry,
/// with Istio's sources in Istio's order: `credentialNames` (one or two secrets: RSA and
/// ECDSA) or `credentialName` from the secret store, else the `serverCertificate` files; the
/// client CA (MUTUAL) from `caCertCredentialName`, else the secret `<name>-cacert`, else the
/// CA of the credential's own secret, else the `caCertificates` file.
enum ServerTLSBuilder {
    static let terminatingModes: Set<String> = ["SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL"]

    /// The entry, or nil (with a warning saying why) when the server cannot be served.
    static func entry(_ t: ServerTLSSettings, serverNames: [String]?, _ id: String, _ path: String,
                      _ ctx: TranslationContext) -> ListenerTLS? {
        let credentials = ctx.store.credentials
        var tls = ListenerTLS()
        var secretNames = t.credentialNames
        if secretNames.isEmpty, let name = t.credentialName { secretNames = [name] }
        if !secretNames.isEmpty {
            let field = t.credentialNames.isEmpty ? ".credentialName" : ".credentialNames"
            if secretNames.count > 2 {
                ctx.warn(id, path + ".credentialNames", "at most two credentials (one RSA, one ECDSA); the first two are used")
                secretNames = Array(secretNames.prefix(2))
            }
            var pairs: [CertificatePEM] = []
            for name in secretNames {
                guard let c = credentials[name], let chain = c.certificateChain, let key = c.privateKey else {
                    ctx.warn(id, path + field, "secret \"\(name)\" could not be read (see the control plane's warnings); server skipped")
                    return nil
                }
                pairs.append(CertificatePEM(certificateChain: chain, privateKey: key))
            }
            tls.certificates = pairs
        } else if let cert = t.serverCertificate, let key = t.privateKey {
            tls.certificateChain = cert
            tls.privateKey = key
        } else {
            ctx.warn(id, path, "no certificate (credentialName, credentialNames or serverCertificate and privateKey); server skipped")
            return nil
        }
        if t.mode == "MUTUAL" || t.mode == "OPTIONAL_MUTUAL" {
            if let name = t.caCertCredentialName {
                guard let ca = credentials[name]?.caCertificates else {
                    ctx.warn(id, path + ".caCertCredentialName", "secret \"\(name)\" has no usable CA (see the control plane's warnings); server skipped")
                    return nil
                }
                tls.caCertificatesPEM = ca
            } else if let first = secretNames.first,
                      let ca = credentials[first + "-cacert"]?.caCertificates ?? credentials[first]?.caCertificates {
                tls.caCertificatesPEM = ca
            } else if let file = t.caCertificates {
                tls.caCertificates = file
            } else {
                ctx.warn(id, path, "\(t.mode!) needs a CA to verify clients (caCertificates, caCertCredentialName, or ca.crt / cacert in the secret or its -cacert secret); server skipped")
                return nil
            }
            if t.mode == "OPTIONAL_MUTUAL" { tls.requireClientCertificate = false }
            tls.subjectAltNames = t.subjectAltNames.isEmpty ? nil : t.subjectAltNames
            tls.verifyCertificateSpki = t.verifyCertificateSpki.isEmpty ? nil : t.verifyCertificateSpki
            tls.verifyCertificateHash = t.verifyCertificateHash.isEmpty ? nil : t.verifyCertificateHash
        } else {
            for (field, values) in [("subjectAltNames", t.subjectAltNames), ("verifyCertificateSpki", t.verifyCertificateSpki),
                                    ("verifyCertificateHash", t.verifyCertificateHash)] where !values.isEmpty {
                ctx.warn(id, path + "." + field, "applies to client certificates, which SIMPLE does not ask for; ignored")
            }
        }
        tls.minProtocolVersion = t.minProtocolVersion.flatMap(TLSProtocolVersion.init(rawValue:))
        tls.maxProtocolVersion = t.maxProtocolVersion.flatMap(TLSProtocolVersion.init(rawValue:))
        let ciphers = t.cipherSuites.filter(TLSCipherSuites.isKnown)
        if ciphers.count < t.cipherSuites.count {
            let unknown = t.cipherSuites.filter { !ciphers.contains($0) }
            ctx.warn(id, path + ".cipherSuites", "ignoring invalid cipher suites: \(unknown.joined(separator: ", "))"
                     + (ciphers.isEmpty ? "; the default suites are used" : ""))
        }
        tls.cipherSuites = ciphers.isEmpty ? nil : ciphers
        tls.serverNames = serverNames
        return tls
    }

    /// The SNI names of a server (its hosts without namespace); nil when it serves any name.
    static func serverNames(_ server: Server) -> [String]? {
        let names = server.hosts.map { h in
            let parts = h.split(separator: "/", maxSplits: 1).map(String.init)
            return (parts.count == 2 ? parts[1] : h).lowercased()
        }
        return names.isEmpty || names.contains("*") ? nil : names
    }
}
