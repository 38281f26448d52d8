import MeshAPI

/// Fired as a user inbound event by `OpenSSLHandler` once the handshake succeeds,
/// before any application data is delivered.
public struct TLSHandshakeCompleted: Sendable {
    /// The ALPN protocol both sides agreed on, if any.
    public let negotiatedProtocol: String?
    /// Server side: the SNI the client sent. Client side: the name it requested.
    public let serverName: String?
    /// e.g. "TLSv1.3".
    public let protocolVersion: String
    /// e.g. "TLS_AES_128_GCM_SHA256".
    public let cipher: String
    /// Everything filters may ask about the session, the peer's certificate included.
    public let facts: TLSConnectionFacts?

    public init(negotiatedProtocol: String?, serverName: String?, protocolVersion: String, cipher: String,
                facts: TLSConnectionFacts? = nil) {
        self.negotiatedProtocol = negotiatedProtocol
        self.serverName = serverName
        self.protocolVersion = protocolVersion
        self.cipher = cipher
        self.facts = facts
    }
}
