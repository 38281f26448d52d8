/// networking.istio.io Gateway.
public struct Gateway: NodeDecodable, Equatable {
    public var servers: [Server]
    public var selector: [String: String]

    init(_ r: ObjectReader) {
        servers = r.objects("servers")
        selector = r.stringMap("selector")
    }
}

public struct Server: NodeDecodable, Equatable {
    public var port: PortSpec?
    public var bind: String?
    public var hosts: [String]
    public var tls: ServerTLSSettings?
    public var defaultEndpoint: String?
    public var name: String?

    init(_ r: ObjectReader) {
        port = r.object("port")
        bind = r.string("bind")
        hosts = r.strings("hosts")
        tls = r.object("tls")
        defaultEndpoint = r.string("defaultEndpoint")
        name = r.string("name")
    }
}

/// Downstream TLS of a Gateway server (or a Sidecar ingress listener).
public struct ServerTLSSettings: NodeDecodable, Equatable {
    public static let modes = ["PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"]
    public static let protocolVersions = ["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"]

    public struct Certificate: NodeDecodable, Equatable {
        public var serverCertificate: String?
        public var privateKey: String?
        public var caCertificates: String?

        init(_ r: ObjectReader) {
            serverCertificate = r.string("serverCertificate")
            privateKey = r.string("privateKey")
            caCertificates = r.string("caCertificates")
        }
    }

    public var httpsRedirect: Bool?
    public var mode: String?
    public var serverCertificate: String?
    public var privateKey: String?
    public var caCertificates: String?
    public var caCrl: String?
    public var credentialName: String?
    public var credentialNames: [String]
    public var caCertCredentialName: String?
    public var tlsCertificates: [Certificate]
    public var subjectAltNames: [String]
    public var verifyCertificateSpki: [String]
    public var verifyCertificateHash: [String]
    public var minProtocolVersion: String?
    public var maxProtocolVersion: String?
    public var cipherSuites: [String]

    init(_ r: ObjectReader) {
        httpsRedirect = r.bool("httpsRedirect")
        mode = r.enumeration("mode", Self.modes)
        serverCertificate = r.string("serverCertificate")
        privateKey = r.string("privateKey")
        caCertificates = r.string("caCertificates")
        caCrl = r.string("caCrl")
        credentialName = r.string("credentialName")
        credentialNames = r.strings("credentialNames")
        caCertCredentialName = r.string("caCertCredentialName")
        tlsCertificates = r.objects("tlsCertificates")
        subjectAltNames = r.strings("subjectAltNames")
        verifyCertificateSpki = r.strings("verifyCertificateSpki")
        verifyCertificateHash = r.strings("verifyCertificateHash")
        minProtocolVersion = r.enumeration("minProtocolVersion", Self.protocolVersions)
        maxProtocolVersion = r.enumeration("maxProtocolVersion", Self.protocolVersions)
        cipherSuites = r.strings("cipherSuites")
    }
}
