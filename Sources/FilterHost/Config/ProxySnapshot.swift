import MeshAPI
import Transport

/// One immutable, validated configuration. New streams take the current one; a stream
/// keeps the snapshot it started with until it ends, so a swap never disturbs it.
public final class ProxySnapshot: Sendable {
    public let version: Int
    public let bootstrap: Bootstrap
    public let routeTables: [String: RouteTable]
    public let clusters: [String: Cluster]
    /// Filter factories per listener name, in chain order, router excluded: the listener's
    /// `httpFilters`, then the Lua plugins attached to it.
    public let filterChains: [String: [HTTPFilterFactory]]
    /// Network filter factories per TCP proxy listener name (`tcpProxy.networkFilters`).
    public let networkFilters: [String: [NetworkFilterFactory]]
    /// What each chain extension retained, by extension name (Lua: its plugin versions,
    /// which the next build keeps for plugins that did not change).
    public let extensionState: [String: any Sendable]
    /// Parsed per-route filter configs by route id, then filter name (a virtual host's
    /// entry is folded into each of its routes; the route's own wins).
    public let perRouteConfigs: [Int: [String: any Sendable]]
    /// The validated `overloadManager` (off when absent).
    package let overload: OverloadPlan
    /// The pushed telemetry, compiled (`bootstrap.telemetry`).
    let telemetry: SnapshotTelemetry
    /// Server TLS contexts by listener name (`tls` or `tlsByServerName`), taken at each accept.
    package let serverTLSContexts: [String: TLSServerContext]

    init(version: Int, bootstrap: Bootstrap, routeTables: [String: RouteTable], clusters: [String: Cluster],
         filterChains: [String: [HTTPFilterFactory]], extensionState: [String: any Sendable] = [:],
         perRouteConfigs: [Int: [String: any Sendable]] = [:], overload: OverloadPlan = .off,
         networkFilters: [String: [NetworkFilterFactory]] = [:], telemetry: SnapshotTelemetry = .notPushed,
         serverTLSContexts: [String: TLSServerContext] = [:]) {
        self.networkFilters = networkFilters
        self.version = version
        self.bootstrap = bootstrap
        self.routeTables = routeTables
        self.clusters = clusters
        self.filterChains = filterChains
        self.extensionState = extensionState
        self.perRouteConfigs = perRouteConfigs
        self.overload = overload
        self.telemetry = telemetry
        self.serverTLSContexts = serverTLSContexts
    }

    public func listener(named name: String) -> Listener? {
        bootstrap.listeners.first { $0.name == name }
    }

    /// Validates and compiles a bootstrap. Every error names the field path. Lua plugins
    /// unchanged since `previous` keep their version (and VMs). With `loadingTLS` the
    /// listeners' server TLS contexts are made too (their certificates must load); a running
    /// proxy asks for them, a check of a translated config (whose files live elsewhere) does not.
    public static func build(_ b: Bootstrap, version: Int, registry: FilterRegistry,
                             previous: ProxySnapshot? = nil, loadingTLS: Bool = false) throws -> ProxySnapshot {
        let overload = try OverloadPlan(b.overloadManager)
        let telemetry = try SnapshotTelemetry(b.telemetry)
        var clusters: [String: Cluster] = [:]
        for (i, c) in b.clusters.enumerated() {
            let path = "clusters[\(i)]"
            guard clusters[c.name] == nil else { throw ConfigError(path: path + ".name", reason: "duplicate cluster '\(c.name)'") }
            for (j, e) in c.endpoints.enumerated() where !(1...65535).contains(e.port) {
                throw ConfigError(path: "\(path).endpoints[\(j)].port", reason: "port \(e.port) out of range")
            }
            try validateConsistentHash(c, at: path)
            clusters[c.name] = c
        }
        var tables: [String: RouteTable] = [:]
        var routeIDs = 0
        for (i, rc) in b.routeConfigs.enumerated() {
            let path = "routeConfigs[\(i)]"
            guard tables[rc.name] == nil else { throw ConfigError(path: path + ".name", reason: "duplicate route config '\(rc.name)'") }
            let table = try RouteTable(rc, at: path, firstRouteID: routeIDs)
            routeIDs += table.routeCount
            tables[rc.name] = table
            for (hi, vh) in rc.virtualHosts.enumerated() {
                for (ri, r) in vh.routes.enumerated() {
                    let names = r.route.map { $0.cluster.map { [$0] } ?? $0.weightedClusters?.map(\.name) ?? [] } ?? []
                    for n in names where clusters[n] == nil {
                        throw ConfigError(path: "\(path).virtualHosts[\(hi)].routes[\(ri)].route",
                                          reason: "unknown cluster '\(n)'")
                    }
                    if let action = r.route {
                        try RouterFilter.validate(action, clusters: clusters,
                                                  at: "\(path).virtualHosts[\(hi)].routes[\(ri)].route")
                    }
                }
            }
        }
        var extensions: [(name: String, build: any ChainExtensionBuild)] = try registry.extensions.map { e in
            (e.name, try e.ext.prepare(b, routeTables: tables, previous: previous?.extensionState[e.name]))
        }
        var chains: [String: [HTTPFilterFactory]] = [:]
        var network: [String: [NetworkFilterFactory]] = [:]
        var seenNames = Set<String>()
        var seenPorts = Set<String>()
        for (i, l) in b.listeners.enumerated() {
            let path = "listeners[\(i)]"
            guard seenNames.insert(l.name).inserted else { throw ConfigError(path: path + ".name", reason: "duplicate listener '\(l.name)'") }
            guard seenPorts.insert("\(l.address):\(l.port)").inserted else {
                throw ConfigError(path: path + ".port", reason: "another listener already uses \(l.address):\(l.port)")
            }
            guard (0...65535).contains(l.port) else { throw ConfigError(path: path + ".port", reason: "port \(l.port) out of range") }
            try ListenerLimits.validate(l, path: path)
            if let tcp = l.tcpProxy {
                guard l.serverTLS.isEmpty else {
                    throw ConfigError(path: path + ".tls", reason: "a tcpProxy listener does not terminate TLS (route by serverNames instead)")
                }
                // With a routeConfig too, each connection's first bytes (or mesh ALPN) pick HTTP or bytes.
                if l.routeConfig.isEmpty, !(l.httpFilters ?? []).isEmpty {
                    throw ConfigError(path: path + ".httpFilters", reason: "a tcpProxy listener without a routeConfig runs no HTTP filters")
                }
                _ = try TCPRouteTable(tcp, clusters: clusters, path: path + ".tcpProxy")
                if let t = tcp.idleTimeoutMs, t < 0 { throw ConfigError(path: path + ".tcpProxy.idleTimeoutMs", reason: "must not be negative") }
                if let t = tcp.inspectTimeoutMs, t < 1 { throw ConfigError(path: path + ".tcpProxy.inspectTimeoutMs", reason: "must be at least 1") }
                chains[l.name] = []
                network[l.name] = try networkFilters(tcp, at: path + ".tcpProxy", registry: registry)
                if l.routeConfig.isEmpty { continue }
            }
            guard tables[l.routeConfig] != nil else {
                throw ConfigError(path: path + ".routeConfig", reason: "unknown route config '\(l.routeConfig)'")
            }
            var chain: [HTTPFilterFactory] = []
            for (fi, f) in (l.httpFilters ?? []).enumerated() {
                guard let builder = registry.builder(named: f.name) else {
                    throw ConfigError(path: "\(path).httpFilters[\(fi)].name",
                                      reason: "unknown filter '\(f.name)' (known: \(registry.names.joined(separator: ", ")))")
                }
                let factory: HTTPFilterFactory
                do { factory = try builder(f.config) } catch let e as ConfigError {
                    throw ConfigError(path: "\(path).httpFilters[\(fi)].config" + (e.path.isEmpty ? "" : "." + e.path), reason: e.reason)
                } catch {
                    throw ConfigError(path: "\(path).httpFilters[\(fi)].config", reason: "\(error)")
                }
                var bound = factory
                for e in extensions.indices { bound = extensions[e].build.bind(bound) }
                chain.append(bound)
            }
            chains[l.name] = chain + extensions.flatMap { $0.build.appended(for: l) }
        }
        var state: [String: any Sendable] = [:]
        for e in extensions { state[e.name] = e.build.retained }
        let tlsContexts = try loadingTLS ? ListenerTLSContexts.build(b.listeners, previous: previous) : [:]
        return ProxySnapshot(version: version, bootstrap: b, routeTables: tables, clusters: clusters, filterChains: chains,
                             extensionState: state, perRouteConfigs: try perRouteConfigs(b, tables: tables, registry: registry),
                             overload: overload, networkFilters: network, telemetry: telemetry,
                             serverTLSContexts: tlsContexts)
    }

    /// A TCP proxy listener's `networkFilters`, built; errors name the entry.
    private static func networkFilters(_ tcp: TCPProxy, at path: String, registry: FilterRegistry) throws -> [NetworkFilterFactory] {
        try (tcp.networkFilters ?? []).enumerated().map { i, f in
            guard let builder = registry.networkBuilder(named: f.name) else {
                throw ConfigError(path: "\(path).networkFilters[\(i)].name", reason: "unknown network filter '\(f.name)'")
            }
            do { return try builder(f.config) } catch let e as ConfigError {
                throw ConfigError(path: "\(path).networkFilters[\(i)].config" + (e.path.isEmpty ? "" : "." + e.path), reason: e.reason)
            }
        }
    }

    /// Parses every `perFilterConfig` entry that has a registered parser, per route.
    private static func perRouteConfigs(_ b: Bootstrap, tables: [String: RouteTable],
                                        registry: FilterRegistry) throws -> [Int: [String: any Sendable]] {
        var result: [Int: [String: any Sendable]] = [:]
        func parse(_ entries: [String: JSONValue]?, at path: String) throws -> [String: any Sendable] {
            var parsed: [String: any Sendable] = [:]
            for (name, value) in entries ?? [:] {
                guard let parser = registry.perRouteParsers[name] else { continue }
                do { parsed[name] = try parser(value) } catch let e as ConfigError {
                    throw ConfigError(path: "\(path).perFilterConfig.\(name)" + (e.path.isEmpty ? "" : "." + e.path), reason: e.reason)
                }
            }
            return parsed
        }
        for (ci, rc) in b.routeConfigs.enumerated() {
            guard let table = tables[rc.name] else { continue }
            for (hi, vh) in rc.virtualHosts.enumerated() {
                let hostPath = "routeConfigs[\(ci)].virtualHosts[\(hi)]"
                let host = try parse(vh.perFilterConfig, at: hostPath)
                for (ri, r) in vh.routes.enumerated() {
                    let own = try parse(r.perFilterConfig, at: "\(hostPath).routes[\(ri)]")
                    let merged = host.merging(own) { _, route in route }
                    if !merged.isEmpty { result[table.compiledRoute(host: hi, index: ri).id] = merged }
                }
            }
        }
        return result
    }

    /// A hash policy needs exactly one key; maglev needs a prime table (Envoy's rules).
    static func validateConsistentHash(_ c: Cluster, at path: String) throws {
        let hashing = c.lbPolicy == .ringHash || c.lbPolicy == .maglev
        guard let h = c.consistentHash else {
            if hashing { throw ConfigError(path: path + ".consistentHash", reason: "required with lbPolicy \(c.lbPolicy!.rawValue)") }
            return
        }
        guard hashing else { throw ConfigError(path: path + ".consistentHash", reason: "needs lbPolicy RING_HASH or MAGLEV") }
        let keys = [h.header != nil, h.cookie != nil, h.sourceIp == true, h.queryParameter != nil].filter { $0 }.count
        guard keys == 1 else {
            throw ConfigError(path: path + ".consistentHash", reason: "exactly one of header, cookie, sourceIp, queryParameter is required")
        }
        if let n = h.minimumRingSize, !(1...ConsistentHashTable.maximumRingSize).contains(n) {
            throw ConfigError(path: path + ".consistentHash.minimumRingSize", reason: "must be in 1-\(ConsistentHashTable.maximumRingSize)")
        }
        if let n = h.maglevTableSize, !(isPrime(n) && n <= 5_000_011) {
            throw ConfigError(path: path + ".consistentHash.maglevTableSize", reason: "must be a prime up to 5000011")
        }
    }

    static func isPrime(_ n: Int) -> Bool {
        guard n > 3 else { return n > 1 }
        guard n % 2 != 0 else { return false }
        var d = 3
        while d * d <= n {
            if n % d == 0 { return false }
            d += 2
        }
        return true
    }
}
