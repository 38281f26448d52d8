import MeshAPI

/// Gateway servers that carry bytes rather than HTTP: `TCP` (and the protocols Istio
/// proxies as TCP: MONGO, REDIS, MYSQL) and TLS `PASSTHROUGH` (protocol TLS or HTTPS).
/// Their port gets a TCP proxy listener with the `tcp` and `tls` routes of the
/// VirtualServices bound to the gateways serving it.
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
            case "PASSTHROUGH": return .bytes
            case "AUTO_PASSTHROUGH":
                return .unsupported("AUTO_PASSTHROUGH (SNI-encoded cluster names for multi-network) is not supported")
            default:
                return proto == .tls ? .unsupported("TLS servers that terminate TLS before TCP routes are not supported (use HTTPS or PASSTHROUGH)") : .http
            }
        default:
            return .http
        }
    }

    /// Nil when no VirtualService routes the port (Istio leaves such a server without a listener too).
    static func listener(port: Int, _ gateways: [Config<Gateway>], _ ctx: TranslationContext) -> Listener? {
        var routes: [TCPProxyRoute] = []
        var seen = Set<String>()
        for gw in gateways where seen.insert(gw.id).inserted {
            for vs in ctx.index.virtualServices(boundTo: gw)
            where ConfigIndex.exported(vs.spec.exportTo, from: vs.namespace, to: gw.namespace) {
                routes += TCPRouteBuilder(ctx: ctx, gateway: "\(gw.namespace)/\(gw.name)", port: port, service: nil).routes(vs)
            }
        }
        guard !routes.isEmpty else { return nil }
        return Listener(name: Naming.gatewayListener(port: port), address: ctx.proxy.address,
                        port: ctx.proxy.gatewayPorts[port] ?? port, routeConfig: "",
                        tcpProxy: TCPProxy(routes: routes,
                                           networkFilters: [StatsFilterBuilder.filter(for: ctx.proxy, reporter: .source)]))
    }
}
