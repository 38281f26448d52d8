import MeshAPI

/// A sidecar's listeners: `outbound` with a virtual host per reachable service port (routes
/// from the VirtualService bound to `mesh` for that host, or a default route), the Sidecar's
/// egress listeners with a port (`SidecarEgressBuilder`), and `inbound` sending everything
/// to the app (HTTP, bytes, or either).
///
/// Domains of a service port's virtual host: the short name (same namespace only),
/// `name.namespace`, `name.namespace.svc` and the FQDN, each with `:PORT`; the service's
/// lowest HTTP port also gets them without a port.
enum SidecarBuilder {
    /// The `outbound` route config. It does not depend on the proxy's address or ports (see
    /// `local`), so proxies alike in everything else can share it.
    static func build(_ ctx: TranslationContext) -> [RouteConfig] {
        ctx.outboundListeners = [Naming.outbound]
        ctx.inboundListeners = ctx.proxy.appPort == nil ? [] : [Naming.inbound]
        return [RouteConfig(name: Naming.outbound, virtualHosts: outbound(ctx))]
    }

    /// What a sidecar's own listeners take from its shared part: the inbound side's security
    /// filters and protocols (bytes when a service its workload is part of has a TCP port —
    /// `tcp`, `tls`, `https`, `mongo`, `redis`, `mysql`, by protocol or name — HTTP when one
    /// has an HTTP port or none says), and the egress listeners.
    static func shared(_ ctx: TranslationContext) -> SidecarShared {
        var out = SidecarShared()
        out.inboundFilters = SecurityBuilder.filters(ctx)
        let proxy = ctx.proxy
        let protocols = ctx.registry.services.filter {
            $0.namespace == proxy.namespace && $0.selector.map { proxy.labels.matches($0) } == true
        }.flatMap(\.ports).map(\.protocol)
        if protocols.contains(where: \.isTCP) {
            out.inboundHTTP = protocols.contains(where: \.isHTTP)
            out.inboundNetworkFilters = SecurityBuilder.networkFilters(ctx, listener: nil, serverPort: 0)
        }
        (out.egressListeners, out.egressRouteConfigs) = SidecarEgressBuilder.build(ctx)
        return out
    }

    /// What depends on the proxy's own address and ports: the `outbound` listener, the egress
    /// listeners and, when the sidecar fronts an app, the `inbound` listener, route config and
    /// cluster. `outboundFilters`: the native filters the shared `outbound` routes use;
    /// `meshTLS`: the inbound listener's PeerAuthentication mode (nil: plaintext).
    ///
    /// The inbound listener is one port for every service port of the workload (meshd
    /// captures no traffic, so there is no original destination port to tell them apart): when
    /// the workload serves bytes it proxies them to the app too. With HTTP beside, each
    /// connection says which it is: behind mesh TLS by its ALPN (a sidecar's TCP proxy offers
    /// Istio's `istio-peer-exchange`/`istio`), in cleartext by its first bytes.
    static func local(_ proxy: ProxyIdentity, outboundFilters: [HTTPFilterConfig]? = nil, shared: SidecarShared = SidecarShared(),
                      meshTLS: MeshTLSMode? = nil) -> (listeners: [Listener], routeConfigs: [RouteConfig], clusters: [Cluster]) {
        var listeners = [Listener(name: Naming.outbound, address: proxy.address, port: proxy.outboundPort,
                                  routeConfig: Naming.outbound,
                                  httpFilters: [StatsFilterBuilder.filter(for: proxy, reporter: .source)] + (outboundFilters ?? []))]
        listeners[0].trafficDirection = .outbound
        for var egress in shared.egressListeners {
            if egress.address.isEmpty { egress.address = proxy.address }
            let stats = StatsFilterBuilder.filter(for: proxy, reporter: .source)
            if !egress.routeConfig.isEmpty { egress.httpFilters = [stats] + (egress.httpFilters ?? []) }
            if var tcp = egress.tcpProxy {
                tcp.networkFilters = (tcp.networkFilters ?? []) + [stats]
                egress.tcpProxy = tcp
            }
            listeners.append(egress)
        }
        guard let app = proxy.appPort else { return (listeners, [], []) }
        let cluster = Naming.inboundCluster(appPort: app)
        let stats = StatsFilterBuilder.filter(for: proxy, reporter: .destination)
        var inbound = Listener(name: Naming.inbound, address: proxy.address, port: proxy.inboundPort,
                               routeConfig: shared.inboundHTTP ? Naming.inbound : "",
                               httpFilters: shared.inboundHTTP ? [stats] : nil)
        inbound.trafficDirection = .inbound
        inbound.meshTLS = meshTLS
        if shared.inboundNetworkFilters != nil {
            inbound.tcpProxy = TCPProxy(routes: [TCPProxyRoute(name: Naming.inbound, cluster: cluster)], networkFilters: [stats])
        }
        listeners.append(inbound)
        let config = RouteConfig(name: Naming.inbound, virtualHosts: [
            VirtualHost(name: "inbound|\(app)", domains: ["*"], routes: [RouteBuilder.defaultRoute(cluster: cluster, outbound: false)],
                        includeRequestAttemptCount: true),
        ])
        return (listeners, shared.inboundHTTP ? [config] : [], [inboundCluster(cluster, app: app)])
    }

    /// The virtual hosts of the services (and VirtualService hosts) visible in `scope`: every
    /// HTTP port, or only `port` (a Sidecar egress listener's, whose names then also go without
    /// a port).
    static func outbound(_ ctx: TranslationContext, scope: SidecarScope? = nil, port only: Int? = nil) -> [VirtualHost] {
        let proxy = ctx.proxy
        let scope = scope ?? ctx.scope
        let services = ctx.registry.services.filter {
            scope.visible(namespace: $0.namespace, host: $0.host, exportTo: $0.exportTo)
        }
        let meshServices = ctx.index.virtualServices.filter {
            $0.spec.appliesToMesh && ConfigIndex.exported($0.spec.exportTo, from: $0.namespace, to: proxy.namespace)
        }
        if only == nil, ctx.scope.portListeners.isEmpty {
            for vs in meshServices where !vs.spec.tcp.isEmpty || !vs.spec.tls.isEmpty {
                // The outbound listener is routed by Host; bytes have no Host.
                ctx.warn(vs.id, vs.spec.tcp.isEmpty ? "spec.tls" : "spec.tcp",
                         "tcp and tls routes reach a sidecar through a Sidecar egress listener with a port (meshd captures no traffic); this sidecar has none, so they are ignored here")
            }
        }
        // Every (VirtualService, host pattern) pair, in order; exact names indexed by name.
        var exact: [String: [Config<VirtualService>]] = [:]
        var wildcards: [(vs: Config<VirtualService>, pattern: String)] = []
        for vs in meshServices {
            for h in vs.spec.hosts {
                let pattern = HostNames.fqdn(h, namespace: vs.namespace)
                if pattern.hasPrefix("*") { wildcards.append((vs, pattern)) } else { exact[pattern, default: []].append(vs) }
            }
        }
        /// The VirtualService for a host: the first naming it exactly, else the longest wildcard covering it.
        func owner(_ host: String) -> Config<VirtualService>? {
            if let vs = exact[host]?.first(where: { scope.visible(namespace: $0.namespace, host: host, exportTo: []) }) {
                return vs
            }
            var best: (Config<VirtualService>, Int)?
            for (vs, pattern) in wildcards {
                guard HostNames.matches(pattern: pattern, host: host),
                      scope.visible(namespace: vs.namespace, host: pattern, exportTo: []) else { continue }
                if pattern == host { return vs }
                if best == nil || pattern.count > best!.1 { best = (vs, pattern.count) }
            }
            return best?.0
        }

        var claimed = Set<String>()
        var vhosts: [VirtualHost] = []
        for service in services {
            let dr = ctx.index.destinationRule(for: service.host, clientNamespace: proxy.namespace, clientLabels: proxy.labels)
            for port in service.ports {
                _ = ctx.cluster(host: service.host, port: port.number, subset: nil)
                for subset in dr?.spec.subsets ?? [] {
                    if let name = subset.name { _ = ctx.cluster(host: service.host, port: port.number, subset: name) }
                }
            }
            let vs = owner(service.host)
            let aliases = HostNames.aliases(of: service.host, clientNamespace: proxy.namespace)
            for (k, port) in service.ports.filter({ $0.protocol.isHTTP && (only == nil || $0.number == only) }).enumerated() {
                var domains = aliases.map { "\($0):\(port.number)" }
                if k == 0 { domains += aliases }
                domains = domains.filter { claimed.insert($0).inserted }
                guard !domains.isEmpty else { continue }
                var name = Naming.virtualHost(host: service.host, port: port.number)
                var routes: [Route] = []
                if let vs {
                    routes = RouteBuilder(ctx: ctx, gateway: "mesh", port: port.number, service: service).routes(vs)
                    if !routes.isEmpty {
                        name = Naming.virtualHost(virtualService: vs.namespace, vs.name)
                        ctx.vhostsByVirtualService[vs.id, default: []].insert(name)
                    }
                }
                if routes.isEmpty {
                    routes = [RouteBuilder.defaultRoute(cluster: ctx.cluster(host: service.host, port: port.number, subset: nil),
                                                       outbound: true)]
                }
                ctx.vhostsByService[service.host, default: []].insert(name)
                vhosts.append(VirtualHost(name: name, domains: domains, routes: routes, includeRequestAttemptCount: true))
            }
        }
        // Hosts a VirtualService names that no service defines (external names, wildcards).
        let serviceHosts = Set(services.map(\.host))
        for vs in meshServices {
            for h in vs.spec.hosts {
                let fqdn = HostNames.fqdn(h, namespace: vs.namespace)
                guard !serviceHosts.contains(fqdn), owner(fqdn)?.id == vs.id else { continue }
                let domains = HostNames.aliases(of: fqdn, clientNamespace: proxy.namespace).filter { claimed.insert($0).inserted }
                guard !domains.isEmpty else { continue }
                let routes = RouteBuilder(ctx: ctx, gateway: "mesh", port: nil, service: nil).routes(vs)
                let name = Naming.virtualHost(virtualService: vs.namespace, vs.name)
                ctx.vhostsByVirtualService[vs.id, default: []].insert(name)
                vhosts.append(VirtualHost(name: name, domains: domains, routes: routes, includeRequestAttemptCount: true))
            }
        }
        if claimed.insert("*").inserted { vhosts.append(catchAll(ctx)) }
        return vhosts
    }

    /// The outbound traffic policy's mode: the Sidecar's, else the mesh config's (ALLOW_ANY).
    static func allowsAny(_ ctx: TranslationContext) -> Bool {
        (ctx.scope.outboundTrafficPolicy?.mode ?? ctx.store.meshConfig.outboundTrafficPolicyMode ?? "ALLOW_ANY") == "ALLOW_ANY"
    }

    /// Istio's last virtual host, for hosts no service claims: under ALLOW_ANY (Istio's default)
    /// `allow_any` sends them to their own address (PassthroughCluster, no timeout) or to the
    /// Sidecar's `egressProxy`; under REGISTRY_ONLY `block_all` answers 502.
    private static func catchAll(_ ctx: TranslationContext) -> VirtualHost {
        let sidecarPolicy = ctx.scope.outboundTrafficPolicy
        guard allowsAny(ctx) else {
            return VirtualHost(name: Naming.blockAll, domains: ["*"], routes: [
                Route(name: Naming.blockAll, match: RouteMatch(prefix: "/"), directResponse: DirectResponse(status: 502)),
            ], includeRequestAttemptCount: true)
        }
        var cluster = Naming.passthroughCluster
        if let egress = sidecarPolicy?.egressProxy, let host = egress.host {
            let fqdn = HostNames.fqdn(host, namespace: ctx.scope.sidecarNamespace)
            cluster = ctx.cluster(host: fqdn, port: egress.port?.number ?? 80, subset: egress.subset)
        }
        return VirtualHost(name: Naming.allowAny, domains: ["*"], routes: [
            Route(name: Naming.allowAny, match: RouteMatch(prefix: "/"), route: RouteAction(cluster: cluster, timeoutMs: 0)),
        ], includeRequestAttemptCount: true)
    }

    /// Envoy's ORIGINAL_DST cluster that `allow_any` uses: each request goes to its `:authority`.
    static var passthroughCluster: Cluster {
        var cluster = Cluster(name: Naming.passthroughCluster, connectTimeoutMs: 10_000, endpoints: [])
        cluster.originalDestination = true
        return cluster
    }

    /// The app behind the sidecar, with Istio's open circuit breakers (as its outbound clusters).
    static func inboundCluster(_ name: String, app: Int) -> Cluster {
        let open = ClusterBuilder.istioUnbounded
        return Cluster(name: name, maxConnections: open, maxPendingRequests: open, maxRequests: open,
                       endpoints: [Endpoint(address: "127.0.0.1", port: app)])
    }
}

extension SidecarBuilder {
    /// The inbound listener's mesh TLS for `proxy` (its app port is the workload port
    /// `portLevelMtls` names).
    static func meshTLS(_ proxy: ProxyIdentity, _ store: ConfigStore) -> MeshTLSMode? {
        PeerAuthenticationPolicy.listenerMode(
            PeerAuthenticationPolicy.mode(namespace: proxy.namespace, labels: proxy.labels, port: proxy.appPort, store: store))
    }
}

/// What a sidecar's own listeners take from its shared part (see `SidecarBuilder.shared`).
struct SidecarShared: Sendable, Equatable {
    /// Security filters for the inbound listener's HTTP (`SecurityBuilder.filters`).
    var inboundFilters: [HTTPFilterConfig] = []
    /// The inbound listener serves HTTP.
    var inboundHTTP = true
    /// Set when it proxies bytes too: their network filters (Istio's network RBAC).
    var inboundNetworkFilters: [HTTPFilterConfig]?
    /// The egress listeners, address empty for the proxy's own, without the stats filter.
    var egressListeners: [Listener] = []
    var egressRouteConfigs: [RouteConfig] = []
}
