import MeshAPI
import Transport

/// What a TCP proxy connection is, for the filters that watch it.
public struct TCPConnectionFacts: Sendable {
    public var listener: String
    /// The cluster the route picked; nil before (or without) a route.
    public var cluster: String?
    /// The SNI of the client's ClientHello, when a route needed it.
    public var serverName: String?
    /// Envoy's response flags so far (`NR`, `UH`, `UF`), `-` when none.
    public var responseFlags: String
    /// The downstream connection's addresses (and its SNI, when read); behind mesh TLS (a
    /// sidecar's inbound) its handshake, with the verified peer's identity.
    public var connection: ConnectionInfo

    public init(listener: String, cluster: String? = nil, serverName: String? = nil, responseFlags: String = "-",
                connection: ConnectionInfo = ConnectionInfo(remoteAddress: nil, localAddress: nil)) {
        self.listener = listener
        self.cluster = cluster
        self.serverName = serverName
        self.responseFlags = responseFlags
        self.connection = connection
    }
}

/// A network filter's answer to a new connection (Envoy's network RBAC).
public enum TCPAdmission: Sendable, Equatable {
    case admit
    /// Closed at once; `details` is the connection termination details for the access log.
    case reject(details: String)
}

/// A watcher of one TCP proxy connection (Envoy's network filter in front of `tcp_proxy`,
/// reduced to what Istio's TCP stats and network RBAC need): asked to admit the connection
/// once its SNI is known and before any upstream is picked, told when the connection is open
/// to the upstream (or failed to be), and when it closed with its byte counts. Calls happen
/// on its loop.
public protocol TCPConnectionObserver: AnyObject {
    /// Once per connection, before routing; a rejection closes the connection.
    func admit(_ facts: TCPConnectionFacts) -> TCPAdmission
    /// Once per connection: the upstream connection is up, or the connection ended without one.
    func opened(_ facts: TCPConnectionFacts)
    /// Once per connection, after `opened`: bytes received from and sent to the client.
    func closed(_ facts: TCPConnectionFacts, bytesReceived: Int, bytesSent: Int)
}

extension TCPConnectionObserver {
    /// Observers that only watch admit everything.
    public func admit(_ facts: TCPConnectionFacts) -> TCPAdmission { .admit }
    public func opened(_ facts: TCPConnectionFacts) {}
    public func closed(_ facts: TCPConnectionFacts, bytesReceived: Int, bytesSent: Int) {}
}

/// Makes a listener's observer for each connection; built once per snapshot from a
/// `tcpProxy.networkFilters` entry.
public protocol NetworkFilterFactory: Sendable {
    func makeObserver(stats: StatsScope) -> TCPConnectionObserver
}

public typealias NetworkFilterFactoryBuilder = @Sendable (JSONValue?) throws -> NetworkFilterFactory
