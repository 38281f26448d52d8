import MeshAPI

/// What a TCP proxy connection is, for the filters that watch it.
public struct TCPConnectionFacts: Sendable {
    public var listener: String
    /// The cluster the route picked; nil before (or without) a route.
    public var cluster: String?
    /// The SNI of the client's ClientHello, when a route needed it.
    public var serverName: String?
    /// Envoy's response flags so far (`NR`, `UH`, `UF`), `-` when none.
    public var responseFlags: String
}

/// A watcher of one TCP proxy connection (Envoy's network filter in front of `tcp_proxy`,
/// reduced to what Istio's TCP stats need): told when the connection is open to the upstream
/// (or failed to be), and when it closed with its byte counts. Calls happen on its loop.
public protocol TCPConnectionObserver: AnyObject {
    /// Once per connection: the upstream connection is up, or the connection ended without one.
    func opened(_ facts: TCPConnectionFacts)
    /// Once per connection, after `opened`: bytes received from and sent to the client.
    func closed(_ facts: TCPConnectionFacts, bytesReceived: Int, bytesSent: Int)
}

/// Makes a listener's observer for each connection; built once per snapshot from a
/// `tcpProxy.networkFilters` entry.
public protocol NetworkFilterFactory: Sendable {
    func makeObserver(stats: StatsScope) -> TCPConnectionObserver
}

public typealias NetworkFilterFactoryBuilder = @Sendable (JSONValue?) throws -> NetworkFilterFactory
