import MeshAPI
import NIOCore
import NIOPosix
import Transport

/// Upstream connections of one event loop, per cluster endpoint. HTTP/1.1 connections
/// carry one request at a time and are kept alive between requests; HTTP/2 connections
/// carry many streams. Loop-local: no locks.
final class UpstreamPools: UpstreamClient {
    typealias Result = Swift.Result<(UpstreamConnection, String), UpstreamFailure>
    typealias Waiter = (Result) -> Void

    private let eventLoop: EventLoop
    private var pools: [PoolKey: EndpointPool] = [:]
    private var roundRobin: [String: Int] = [:]
    var connector: UpstreamConnector

    init(eventLoop: EventLoop, timers: LoopTimers) {
        self.eventLoop = eventLoop
        self.connector = UpstreamConnector(eventLoop: eventLoop, timers: timers)
    }

    struct PoolKey: Hashable {
        let cluster: String
        let endpoint: Endpoint
        let http2: Bool
        let tls: UpstreamTLS?
    }

    /// Picks an endpoint by the cluster's policy and hands back a connection ready for a stream.
    func connection(for cluster: Cluster, _ done: @escaping Waiter) {
        connection(for: cluster, avoiding: [], done)
    }

    /// Endpoints in `avoiding` are left out while another exists (Envoy's previous_hosts
    /// predicate, without its bound on re-picks: the choice is made among the others).
    @discardableResult
    func connection(for cluster: Cluster, avoiding: Set<String>, _ done: @escaping Waiter) -> String? {
        guard !cluster.endpoints.isEmpty else {
            done(.failure(.connectFailure("no endpoints")))
            return nil
        }
        var candidates = cluster.endpoints.map { pool(for: cluster, endpoint: $0) }
        if !avoiding.isEmpty {
            let others = candidates.filter { !avoiding.contains($0.host) }
            if !others.isEmpty { candidates = others }
        }
        let chosen: EndpointPool
        switch cluster.lbPolicy ?? .roundRobin {
        case .roundRobin:
            let i = roundRobin[cluster.name, default: 0]
            roundRobin[cluster.name] = i &+ 1
            chosen = candidates[i % candidates.count]
        case .random:
            chosen = candidates.randomElement()!
        case .leastRequest:
            // Power of two choices, as Envoy does.
            let a = candidates.randomElement()!, b = candidates.randomElement()!
            chosen = a.activeStreams <= b.activeStreams ? a : b
        }
        chosen.acquire(done)
        return chosen.host
    }

    private func pool(for cluster: Cluster, endpoint: Endpoint) -> EndpointPool {
        let key = PoolKey(cluster: cluster.name, endpoint: endpoint, http2: cluster.protocol == .http2, tls: cluster.tls)
        if let p = pools[key] { return p }
        let p = EndpointPool(key: key, cluster: cluster, connector: connector, eventLoop: eventLoop)
        pools[key] = p
        return p
    }

    var activeConnectionCount: Int { pools.values.reduce(0) { $0 + $1.connectionCount } }
}

/// The connections to one endpoint, and requests waiting for one.
final class EndpointPool {
    let key: UpstreamPools.PoolKey
    private let cluster: Cluster
    private let connector: UpstreamConnector
    private let eventLoop: EventLoop
    private var connections: [UpstreamConnection] = []
    private var connecting = 0
    private var waiters: [UpstreamPools.Waiter] = []
    private(set) var activeStreams = 0
    /// "address:port", as the access log shows it.
    let host: String

    init(key: UpstreamPools.PoolKey, cluster: Cluster, connector: UpstreamConnector, eventLoop: EventLoop) {
        self.key = key
        self.cluster = cluster
        self.connector = connector
        self.eventLoop = eventLoop
        self.host = "\(key.endpoint.address):\(key.endpoint.port)"
    }

    var connectionCount: Int { connections.count }
    private var maxConnections: Int { key.http2 ? 1 : (cluster.maxConnectionsPerEndpoint ?? 1024) }

    func acquire(_ waiter: @escaping UpstreamPools.Waiter) {
        // Most recently used first: keeps a warm connection busy and lets idle ones time out.
        if let c = connections.last(where: { $0.canStartStream && !$0.isClosed }) {
            hand(c, to: waiter)
            return
        }
        waiters.append(waiter)
        if connections.count + connecting < maxConnections, connecting < waiters.count {
            connect()
        }
    }

    private func hand(_ c: UpstreamConnection, to waiter: UpstreamPools.Waiter) {
        activeStreams += 1
        waiter(.success((c, host)))
    }

    private func connect() {
        connecting += 1
        connector.connect(cluster: cluster, endpoint: key.endpoint, http2: key.http2).hop(to: eventLoop)
            .assumeIsolated().whenComplete { result in
                self.connecting -= 1
                switch result.flatMap({ ch in Swift.Result { try UpstreamConnector.connection(of: ch, http2: self.key.http2) } }) {
                case .success(let c):
                    self.connections.append(c)
                    c.onStateChange = { [weak self, unowned c] in self?.stateChanged(c) }
                    self.serveWaiters(on: c)
                case .failure(let error):
                    // Without connections to wait for, the queued requests fail now.
                    if self.connections.isEmpty && self.connecting == 0 {
                        let failing = self.waiters
                        self.waiters.removeAll()
                        let why = (error as? UpstreamFailure).map { "\($0)" } ?? "\(error)"
                        for w in failing { w(.failure(.connectFailure(why))) }
                    } else if !self.waiters.isEmpty, self.connecting == 0 {
                        self.connect()
                    }
                }
            }
    }

    private func serveWaiters(on c: UpstreamConnection) {
        while !waiters.isEmpty, c.canStartStream, !c.isClosed {
            let w = waiters.removeFirst()
            hand(c, to: w)
            // HTTP/1.1 carries one stream; the waiter's startStream marks it busy.
            if !key.http2 { break }
        }
    }

    /// A connection finished a stream or closed.
    private func stateChanged(_ c: UpstreamConnection) {
        activeStreams = max(0, activeStreams - 1)
        if c.isClosed {
            connections.removeAll { $0 === c }
            if !waiters.isEmpty, connections.count + connecting < maxConnections { connect() }
            return
        }
        serveWaiters(on: c)
    }
}
