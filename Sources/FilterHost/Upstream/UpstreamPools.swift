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
    /// Pools are dropped once idle when their number has doubled since the last sweep: endpoints
    /// come and go (sidecars leaving, passthrough destinations), and each left a pool behind.
    private var sweepAt = 64
    /// Per cluster name: the pools of its endpoints as of the cluster config they were
    /// picked for, and its round-robin position. A request finds them with one hash of the
    /// name and a comparison with the cluster it routes to (cheap for the same snapshot:
    /// strings and arrays compare by identity first).
    private var byCluster: [String: ClusterPools] = [:]

    private struct ClusterPools {
        var cluster: Cluster
        var pools: [EndpointPool]
        var roundRobin = 0
        /// Facts about the endpoints that every request would otherwise scan for, computed
        /// when the cluster's config changes: endpoints per priority when some priority is
        /// above 0 (nil: one level), and whether any endpoint has a locality weight.
        let priorityTotals: [Int: Int]?
        let anyWeighted: Bool
        /// When the newest endpoint leaves its slow-start window (nil: no slow start, or
        /// every endpoint was warm): after it, no request weighs the endpoints.
        let slowStartEnds: NIODeadline?

        init(cluster: Cluster, pools: [EndpointPool], roundRobin: Int) {
            self.cluster = cluster
            self.pools = pools
            self.roundRobin = roundRobin
            if cluster.endpoints.contains(where: { ($0.priority ?? 0) > 0 }) {
                var totals: [Int: Int] = [:]
                for e in cluster.endpoints { totals[e.priority ?? 0, default: 0] += 1 }
                priorityTotals = totals
            } else {
                priorityTotals = nil
            }
            anyWeighted = cluster.endpoints.contains { $0.weight != nil }
            slowStartEnds = cluster.slowStart.flatMap { slowStart in
                pools.lazy.map(\.addedAt).filter { $0 != .distantPast }.max()
                    .map { $0 + .milliseconds(Int64(slowStart.windowMs)) }
            }
        }
    }
    var connector: UpstreamConnector
    private let stats: LoopStats

    init(eventLoop: EventLoop, timers: LoopTimers, stats: LoopStats) {
        self.eventLoop = eventLoop
        self.stats = stats
        self.connector = UpstreamConnector(eventLoop: eventLoop, timers: timers, flushes: LoopFlushBatch(eventLoop: eventLoop))
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
        connection(for: cluster, avoiding: avoiding, hash: nil, done)
    }

    /// Consistent-hash tables per cluster, rebuilt when its endpoints in service change.
    private var hashTables: [String: (hosts: [String], config: ConsistentHashConfig?, policy: Cluster.LBPolicy, table: ConsistentHashTable)] = [:]

    private func hashTable(_ cluster: Cluster, hosts: [String], policy: Cluster.LBPolicy) -> ConsistentHashTable {
        if let t = hashTables[cluster.name], t.hosts == hosts, t.config == cluster.consistentHash, t.policy == policy {
            return t.table
        }
        let table: ConsistentHashTable = policy == .maglev
            ? .maglev(hosts: hosts, tableSize: cluster.consistentHash?.maglevTableSize)
            : .ring(hosts: hosts, minimumRingSize: cluster.consistentHash?.minimumRingSize)
        hashTables[cluster.name] = (hosts, cluster.consistentHash, policy, table)
        return table
    }

    @discardableResult
    func connection(for cluster: Cluster, avoiding: Set<String>, hash: UInt64?, _ done: @escaping Waiter) -> String? {
        connection(for: cluster, avoiding: avoiding, excludingPriorities: [], hash: hash, done)
    }

    @discardableResult
    func connection(for cluster: Cluster, avoiding: Set<String>, excludingPriorities: Set<Int>, hash: UInt64?,
                    _ done: @escaping Waiter) -> String? {
        guard !cluster.endpoints.isEmpty else {
            // Envoy: a cluster without hosts is answered 503 UH, "no healthy upstream".
            done(.failure(.noHealthyUpstream))
            return nil
        }
        let entry = endpointPools(for: cluster)
        var candidates = byCluster.values[entry].pools
        if let outlier = cluster.outlierDetection {
            let ejected = OutlierDetectors.shared.ejected(in: cluster)
            if !ejected.isEmpty {
                let healthy = candidates.filter { !ejected.contains($0.host) }
                // Below minHealthPercent healthy, all are used (Envoy's panic threshold, as Istio sets it).
                if healthy.count * 100 < (outlier.minHealthPercent ?? 0) * candidates.count {
                } else if healthy.isEmpty {
                    done(.failure(.noHealthyUpstream))
                    return nil
                } else {
                    candidates = healthy
                }
            }
        }
        if let total = byCluster.values[entry].priorityTotals {
            var healthy: [Int: Int] = [:]
            for c in candidates { healthy[c.key.endpoint.priority ?? 0, default: 0] += 1 }
            if let level = PriorityLoad.level(healthy: healthy, total: total, random: Double.random(in: 0..<1),
                                              excluding: excludingPriorities) {
                candidates = candidates.filter { ($0.key.endpoint.priority ?? 0) == level }
            }
        }
        let policy = cluster.lbPolicy ?? .roundRobin
        if policy != .ringHash, policy != .maglev, byCluster.values[entry].anyWeighted,
           candidates.contains(where: { $0.key.endpoint.weight != nil }),
           let i = PriorityLoad.weighted(candidates.map { $0.key.endpoint.weight ?? 0 }, random: Double.random(in: 0..<1)) {
            // Istio's locality distribute: weights decide, whatever the simple policy.
            let chosen = candidates[i]
            chosen.acquire(done)
            return chosen.host
        }
        if let slowStart = cluster.slowStart, let ends = byCluster.values[entry].slowStartEnds,
           policy == .roundRobin || policy == .leastRequest, candidates.count > 1, case let now = NIODeadline.now(), now < ends {
            // Envoy's slow start: endpoints this loop began using within the window get less.
            let weights = candidates.map {
                $0.addedAt == .distantPast ? 1000 : Int(1000 * slowStart.factor(elapsedMs: Int((now - $0.addedAt).nanoseconds / 1_000_000)))
            }
            if weights.contains(where: { $0 < 1000 }), let i = PriorityLoad.weighted(weights, random: Double.random(in: 0..<1)) {
                let chosen = candidates[i]
                chosen.acquire(done)
                return chosen.host
            }
        }
        // A hash keeps its endpoint on a retry too: the ring is not rebuilt per attempt.
        if !avoiding.isEmpty, policy != .ringHash, policy != .maglev {
            let others = candidates.filter { !avoiding.contains($0.host) }
            if !others.isEmpty { candidates = others }
        }
        let chosen: EndpointPool
        switch policy {
        case .ringHash, .maglev:
            if let hash, let i = hashTable(cluster, hosts: candidates.map(\.host), policy: policy).pick(hash) {
                chosen = candidates[i]
            } else {
                chosen = candidates.randomElement()!
            }
        case .roundRobin:
            let i = byCluster.values[entry].roundRobin
            byCluster.values[entry].roundRobin = i &+ 1
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

    /// The index in `byCluster` of `cluster`'s pools, made or refreshed when its config changed.
    /// Endpoints a cluster has when this loop first uses it are warm; later ones are new (slow start).
    private func endpointPools(for cluster: Cluster) -> Dictionary<String, ClusterPools>.Index {
        if let i = byCluster.index(forKey: cluster.name), byCluster.values[i].cluster == cluster { return i }
        let known = byCluster[cluster.name]
        // Pools persist across config changes (by endpoint); each learns the cluster's new limits.
        byCluster[cluster.name] = ClusterPools(cluster: cluster,
                                               pools: cluster.endpoints.map { pool(for: cluster, endpoint: $0, warm: known == nil) },
                                               roundRobin: known?.roundRobin ?? 0)
        return byCluster.index(forKey: cluster.name)!
    }

    private func pool(for cluster: Cluster, endpoint: Endpoint, warm: Bool) -> EndpointPool {
        let key = PoolKey(cluster: cluster.name, endpoint: endpoint, http2: cluster.protocol == .http2, tls: cluster.tls)
        if let p = pools[key] {
            p.cluster = cluster  // its limits may have changed with the config
            return p
        }
        if pools.count >= sweepAt {
            pools = pools.filter { !$0.value.isIdle }
            sweepAt = max(64, pools.count * 2)
        }
        let p = EndpointPool(key: key, cluster: cluster, connector: connector, eventLoop: eventLoop, stats: stats)
        if warm { p.addedAt = .distantPast }
        pools[key] = p
        return p
    }

    var activeConnectionCount: Int { pools.values.reduce(0) { $0 + $1.connectionCount } }

    /// Open connections per cluster and endpoint (`host:port`), for the admin /clusters page.
    var connectionsByHost: [LoopStats.HostKey: Int] {
        var out: [LoopStats.HostKey: Int] = [:]
        for (key, pool) in pools where pool.connectionCount > 0 {
            out[LoopStats.HostKey(cluster: key.cluster, host: "\(key.endpoint.address):\(key.endpoint.port)"), default: 0]
                += pool.connectionCount
        }
        return out
    }
}

/// The connections to one endpoint, and requests waiting for one. Connections and waiting
/// requests count against the cluster's circuit breakers (`CircuitBreakers`).
final class EndpointPool {
    let key: UpstreamPools.PoolKey
    var cluster: Cluster
    private let connector: UpstreamConnector
    private let eventLoop: EventLoop
    private let stats: LoopStats
    private let breakers = CircuitBreakers.shared
    private var connections: [UpstreamConnection] = []
    private var connecting = 0
    private var waiters: [UpstreamPools.Waiter] = []
    private(set) var activeStreams = 0
    /// "address:port", as the access log shows it.
    let host: String
    /// When this loop first saw the endpoint in its cluster (slow start counts from there).
    var addedAt = NIODeadline.now()

    init(key: UpstreamPools.PoolKey, cluster: Cluster, connector: UpstreamConnector, eventLoop: EventLoop, stats: LoopStats) {
        self.key = key
        self.stats = stats
        self.cluster = cluster
        self.connector = connector
        self.eventLoop = eventLoop
        self.host = "\(key.endpoint.address):\(key.endpoint.port)"
    }

    var connectionCount: Int { connections.count }
    /// Nothing open, opening, waiting or in flight: the pool can go.
    var isIdle: Bool { connections.isEmpty && connecting == 0 && waiters.isEmpty && activeStreams == 0 }
    private var maxConnections: Int { key.http2 ? 1 : (cluster.maxConnectionsPerEndpoint ?? 1024) }

    func acquire(_ waiter: @escaping UpstreamPools.Waiter) {
        if let c = idleConnection() {
            hand(c, to: waiter)
            return
        }
        guard breakers.tryAcquire(.pendingRequests, of: cluster) else {
            waiter(.failure(.overflow("pending requests")))
            return
        }
        waiters.append(waiter)
        if connections.count + connecting < maxConnections, connecting < waiters.count {
            connect()
        }
    }

    /// HTTP/1.1 connections that finished their last exchange, most recently used last.
    /// An entry may have gone stale since (closed, handed out through a duplicate entry):
    /// `idleConnection()` checks before it hands one out. It replaces a scan of every
    /// connection per request (50 with 50 clients).
    private var idle: [UpstreamConnection] = []

    /// Most recently used first: keeps a warm connection busy and lets idle ones time out.
    private func idleConnection() -> UpstreamConnection? {
        // HTTP/2: one connection carries the streams; the list is short.
        if key.http2 { return connections.last(where: canTake) }
        while let c = idle.popLast() {
            if canTake(c) { return c }
        }
        return nil
    }

    private func becameIdle(_ c: UpstreamConnection) {
        guard !key.http2, canTake(c), idle.last !== c else { return }
        idle.append(c)
    }

    /// Requests each HTTP/1.1 connection was handed, for `maxRequestsPerConnection` (kept
    /// only while the cluster sets one).
    private var carried: [ObjectIdentifier: Int] = [:]
    private var countsRequestsPerConnection: Bool { !key.http2 && (cluster.maxRequestsPerConnection ?? 0) > 0 }

    private func spent(_ c: UpstreamConnection) -> Bool {
        guard !key.http2, let limit = cluster.maxRequestsPerConnection, limit > 0 else { return false }
        return carried[ObjectIdentifier(c), default: 0] >= limit
    }

    private func canTake(_ c: UpstreamConnection) -> Bool { c.canStartStream && !c.isClosed && !spent(c) }

    private func hand(_ c: UpstreamConnection, to waiter: UpstreamPools.Waiter) {
        activeStreams += 1
        if countsRequestsPerConnection { carried[ObjectIdentifier(c), default: 0] += 1 }
        waiter(.success((c, host)))
    }

    private func connect() {
        // Over the cluster's limit no connection opens, unless this pool has none: its
        // waiters would otherwise wait for nothing (Envoy does the same).
        if !breakers.tryAcquire(.connections, of: cluster) {
            stats.count("meshd_upstream_cx_overflow_total{cluster=\"\(cluster.name)\"}")
            guard connections.isEmpty, connecting == 0 else { return }
            breakers.forceAcquire(.connections, of: cluster.name)
        }
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
                    self.breakers.release(.connections, of: self.cluster.name)
                    // Without connections to wait for, the queued requests fail now.
                    if self.connections.isEmpty && self.connecting == 0 {
                        let failing = self.waiters
                        self.waiters.removeAll()
                        self.breakers.release(.pendingRequests, of: self.cluster.name, failing.count)
                        let why = (error as? UpstreamFailure).map { "\($0)" } ?? "\(error)"
                        for w in failing { w(.failure(.connectFailure(why))) }
                    } else if !self.waiters.isEmpty, self.connecting == 0 {
                        self.connect()
                    }
                }
            }
    }

    private func serveWaiters(on c: UpstreamConnection) {
        while !waiters.isEmpty, canTake(c) {
            let w = waiters.removeFirst()
            breakers.release(.pendingRequests, of: cluster.name)
            hand(c, to: w)
            // HTTP/1.1 carries one stream; the waiter's startStream marks it busy.
            if !key.http2 { break }
        }
        // Not taken (no one waits, or the waiter handed it back): it waits for the next request.
        becameIdle(c)
    }

    /// A connection finished a stream or closed.
    private func stateChanged(_ c: UpstreamConnection) {
        activeStreams = max(0, activeStreams - 1)
        if c.isClosed {
            let open = connections.count
            connections.removeAll { $0 === c }
            idle.removeAll { $0 === c }
            carried[ObjectIdentifier(c)] = nil
            breakers.release(.connections, of: cluster.name, open - connections.count)
            if !waiters.isEmpty, connections.count + connecting < maxConnections { connect() }
            return
        }
        // Its last request done: close it; the close brings the next connection for waiters.
        if spent(c), c.canStartStream { return c.close() }
        serveWaiters(on: c)
    }
}
