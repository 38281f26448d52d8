import NIOCore
import NIOHTTP1
import MeshAPI

/// The protocol a request arrived on, as Envoy's `streamInfo():protocol()` names it.
public enum HTTPProtocolVersion: String, Sendable {
    case http10 = "HTTP/1.0"
    case http11 = "HTTP/1.1"
    case http2 = "HTTP/2"
}

/// A request's head, independent of the wire protocol.
/// `headers` carries regular headers only: no pseudo-headers and no `host`
/// (HTTP/1.1's `Host` becomes `authority`; codecs write it back).
public struct RequestHead: Sendable {
    public var method: String
    public var scheme: String
    public var authority: String
    public var path: String
    public var headers: HTTPHeaders
    public var version: HTTPProtocolVersion

    public init(method: String, scheme: String, authority: String, path: String,
                headers: HTTPHeaders, version: HTTPProtocolVersion) {
        self.method = method
        self.scheme = scheme
        self.authority = authority
        self.path = path
        self.headers = headers
        self.version = version
    }
}

/// A response's head, independent of the wire protocol. `headers` has no pseudo-headers.
public struct ResponseHead: Sendable {
    public var status: Int
    public var reason: String?
    public var headers: HTTPHeaders

    public init(status: Int, reason: String? = nil, headers: HTTPHeaders = HTTPHeaders()) {
        self.status = status
        self.reason = reason
        self.headers = headers
    }
}

/// What a downstream connection knows about itself; shared by all its streams.
public struct ConnectionInfo: Sendable {
    public var remoteAddress: SocketAddress? {
        didSet { remoteIP = remoteAddress?.ipAddress }
    }
    /// `remoteAddress`'s IP as text, made once per connection: every request's
    /// x-forwarded-for needs it, and formatting it (inet_ntop) is not free.
    public private(set) var remoteIP: String?
    public var localAddress: SocketAddress?
    public var isTLS: Bool
    public var serverName: String?
    public var alpn: String?
    /// The TLS facts of the handshake (version, cipher, the peer's certificate), filled in
    /// by the TLS handler's handshake event; nil on plaintext.
    public var tls: TLSConnectionFacts?

    public init(remoteAddress: SocketAddress?, localAddress: SocketAddress?,
                isTLS: Bool = false, serverName: String? = nil, alpn: String? = nil, tls: TLSConnectionFacts? = nil) {
        self.remoteAddress = remoteAddress
        self.remoteIP = remoteAddress?.ipAddress
        self.localAddress = localAddress
        self.isTLS = isTLS
        self.serverName = serverName
        self.alpn = alpn
        self.tls = tls
    }
}
