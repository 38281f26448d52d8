import MeshAPI

/// Gateway servers that carry bytes rather than HTTP: `TCP` (and the protocols Istio
/// proxies as TCP: MONGO, REDIS, MYSQL), TLS `PASSTHROUGH` and `AUTO_PASSTHROUGH` (protocol
/// TLS or HTTPS). Their port gets a TCP proxy listener with the `tcp` and `tls` routes of the
/// VirtualServices bound to the gateways serving it, and for AUTO_PASSTHROUGH (Istio's
/// east-west gateway) one route per mesh service port and subset whose host the server's hosts
/// cover, matching the SNI a sidecar sends (`outbound_.9080_.v1_.reviews.default.svc.cluster.local`)
/// and forwarding the still-encrypted connection to that SNI-DNAT cluster.
enum TCPGateway {
    enum Kind: Equatable {
        case http
        case bytes
        case unsupported(String)
    }

    static func kind(of s: Server) -> Kind {
        let proto = s.port?.effectiveProtocol ?? .unspecified
        switch proto {
        case .tcp, .mongo, .redis, .mysql:
            return .bytes
        case .tls, .https:
            switch s.tls?.mode ?? "" {
            case "PASSTHROUGH", "AUTO_PASSTHROUGH": return .bytes
            default:
                return proto == .tls ? .unsupported("TLS servers that terminate TLS before TCP routes are not supported (use HTTPS or PASSTHROUGH)") : .http
            }
        default:
            return .http
        }
    }

    /// Nil when no VirtualService routes the port (Istio leaves such a server without a listener too).
    static func listener(port: Int, _ servers: [(gateway: Config<Gateway>, server: Server)], _ ctx: TranslationContext) -> Listener? {
        var routes: [TCPProxyRoute] = []
        var seen = Set<String>()
        for gw in servers.map(\.gateway) where seen.insert(gw.id).inserted {
            for vs in ctx.index.virtualServices(boundTo: gw)
            where ConfigIndex.exported(vs.spec.exportTo, from: vs.namespace, to: gw.namespace) {
                routes += TCPRouteBuilder(ctx: ctx, gateway: "\(gw.namespace)/\(gw.name)", port: port, service: nil).routes(vs)
            }
        }
        var sniNames = Set(routes.flatMap { $0.match?.serverNames ?? [] })
        for (gw, server) in servers where server.tls?.mode == "AUTO_PASSTHROUGH" {
            for route in autoPassthroughRoutes(server, gw, ctx) where sniNames.insert(route.name ?? "").inserted {
                routes.append(route)
            }
        }
        guard !routes.isEmpty else { return nil }
        return Listener(name: Naming.gatewayListener(port: port), address: ctx.proxy.address,
                        port: ctx.proxy.gatewayPorts[port] ?? port, routeConfig: "",
                        tcpProxy: TCPProxy(routes: routes,
                                           networkFilters: [StatsFilterBuilder.filter(for: ctx.proxy, reporter: .source)]))
    }

    /// Istio's `builtAutoPassthroughFilterChains`: for each service visible to the gateway whose
    /// host a server host covers, each port, and each subset of its DestinationRule (and none),
    /// a route on that SNI to the SNI-DNAT cluster. Services without a sidecar endpoint get none.
    static func autoPassthroughRoutes(_ server: Server, _ gw: Config<Gateway>, _ ctx: TranslationContext) -> [TCPProxyRoute] {
        var out: [TCPProxyRoute] = []
        for service in ctx.registry.services where !service.isWildcard
        && ctx.scope.visible(namespace: service.namespace, host: service.host, exportTo: service.exportTo)
        && covers(server, gw, service) {
            let dr = ctx.index.destinationRule(for: service.host, clientNamespace: ctx.proxy.namespace, clientLabels: ctx.proxy.labels)
            for port in service.ports.sorted() {
                for subset in [""] + (dr?.spec.subsets.compactMap(\.name) ?? []) {
                    let cluster = ctx.sniDnatCluster(host: service.host, port: port.number, subset: subset)
                    out.append(TCPProxyRoute(name: cluster, match: TCPProxyMatch(serverNames: [cluster]), cluster: cluster))
                }
            }
        }
        return out
    }

    /// A server host (`[namespace/]host`) covers the service: its namespace part admits the
    /// service's namespace and its host pattern matches the service host.
    private static func covers(_ server: Server, _ gw: Config<Gateway>, _ service: RegistryService) -> Bool {
        server.hosts.contains { sh in
            GatewayBuilder.hostPattern(sh, admitting: service.namespace, gatewayNamespace: gw.namespace)
                .map { HostNames.matches(pattern: $0, host: service.host) } ?? false
        }
    }
}
