import MeshAPI

/// A Sidecar's `egress[]` entries with a `port`: a listener each, bound at `bind` (else the
/// proxy's address) on that port, reaching only the entry's `hosts`. meshd captures no
/// traffic, so such a listener is how a workload reaches a port as something other than
/// HTTP: it connects there itself.
///
/// The port's declared `protocol` decides, as in Istio's sidecars (which read no name prefix here):
/// - HTTP, HTTP2, GRPC, GRPC-WEB: an HTTP listener with the virtual hosts of that port only;
/// - TCP, MONGO, REDIS, MYSQL: bytes, by the `tcp` routes of the VirtualServices for its
///   hosts, else straight to the service on that port;
/// - TLS, HTTPS: bytes routed by the ClientHello's SNI (`tls` routes, else each service by
///   its names), passed through;
/// - none: both, each connection sniffed (HTTP/1 request line, HTTP/2 preface, else bytes).
///
/// The listeners come without their address and the proxy's stats filter, which
/// `SidecarBuilder.local` adds (they depend on the proxy, this on its shared part).
enum SidecarEgressBuilder {
    static func build(_ ctx: TranslationContext) -> (listeners: [Listener], routeConfigs: [RouteConfig]) {
        var listeners: [Listener] = []
        var configs: [RouteConfig] = []
        var ports = Set<Int>()
        for (i, entry) in ctx.scope.portListeners.enumerated() {
            guard let portSpec = entry.port, let number = portSpec.number else { continue }
            guard ports.insert(number).inserted else {
                ctx.warn(ctx.scope.source ?? "", "spec.egress[\(i)].port", "port \(number) has an egress listener already; this one is ignored")
                continue
            }
            // Istio reads only the declared protocol here (no name prefix): none means sniffing.
            let proto = portSpec.protocol.flatMap { PortProtocol(rawValue: $0.uppercased()) } ?? .unspecified
            let scope = ctx.scope.narrowed(to: entry.hosts)
            let name = Naming.egressListener(port: number)
            var listener = Listener(name: name, address: entry.bind ?? "", port: number, routeConfig: "")
            listener.trafficDirection = .outbound
            if proto.isHTTP {
                let config = RouteConfig(name: name, virtualHosts: SidecarBuilder.outbound(ctx, scope: scope, port: number))
                configs.append(config)
                listener.routeConfig = name
                listener.httpFilters = RouteFilterBuilder.filters(for: config)
            }
            if proto == .udp {
                ctx.warn(ctx.scope.source ?? "", "spec.egress[\(i)].port.protocol", "UDP is not proxied; no listener for port \(number)")
                continue
            }
            if !proto.isHTTP || proto == .unspecified {
                listener.tcpProxy = TCPProxy(routes: routes(ctx, scope, port: number, sni: proto.isTLS || proto == .unspecified,
                                                            bytes: !proto.isTLS, sniffed: proto == .unspecified))
            }
            listeners.append(listener)
        }
        return (listeners, configs)
    }

    /// The `tls` and `tcp` routes of the VirtualServices for the port's hosts, then each
    /// service on the port: by SNI (`sni`), and the first one for bytes without a name
    /// (`bytes`; without destination addresses only one service can take those). On a
    /// `sniffed` listener the services whose port is HTTP are the route config's, not these. Under
    /// ALLOW_ANY a ClientHello naming another host passes through to it (Istio's
    /// PassthroughCluster, by SNI since there is no original destination); under
    /// REGISTRY_ONLY, and for bytes no route takes, the connection is closed (BlackHoleCluster).
    private static func routes(_ ctx: TranslationContext, _ scope: SidecarScope, port: Int, sni: Bool, bytes: Bool,
                               sniffed: Bool) -> [TCPProxyRoute] {
        let services = ctx.registry.services.filter {
            guard let p = $0.port(port), !(sniffed && p.protocol.isHTTP) else { return false }
            return scope.visible(namespace: $0.namespace, host: $0.host, exportTo: $0.exportTo)
        }
        let serviceHosts = Set(ctx.registry.services.map(\.host))
        let virtualServices = ctx.index.virtualServices.filter { vs in
            vs.spec.appliesToMesh && ConfigIndex.exported(vs.spec.exportTo, from: vs.namespace, to: ctx.proxy.namespace)
                && vs.spec.hosts.contains { h in
                    let fqdn = HostNames.fqdn(h, namespace: vs.namespace)
                    guard scope.visible(namespace: vs.namespace, host: fqdn, exportTo: []) else { return false }
                    // A registry host counts when it has this port; an external name always.
                    return services.contains { HostNames.matches(pattern: fqdn, host: $0.host) } || !serviceHosts.contains(fqdn)
                }
        }
        var out: [TCPProxyRoute] = []
        var routed = Set<String>()
        for vs in virtualServices {
            let service = vs.spec.hosts.lazy.compactMap { h in services.first { $0.host == HostNames.fqdn(h, namespace: vs.namespace) } }.first
            let found = TCPRouteBuilder(ctx: ctx, gateway: "mesh", port: port, service: service).routes(vs, tls: sni, tcp: bytes)
            if !found.isEmpty {
                ctx.use(vs.id)
                for h in vs.spec.hosts { routed.insert(HostNames.fqdn(h, namespace: vs.namespace)) }
            }
            out += found
        }
        let unrouted = services.filter { !routed.contains($0.host) }
        if sni {
            for service in unrouted {
                let names = HostNames.aliases(of: service.host, clientNamespace: ctx.proxy.namespace).map { $0.lowercased() }
                out.append(TCPProxyRoute(name: Naming.virtualHost(host: service.host, port: port),
                                         match: TCPProxyMatch(serverNames: names),
                                         cluster: ctx.cluster(host: service.host, port: port, subset: nil)))
            }
        }
        if bytes, let first = unrouted.first {
            if unrouted.count > 1 {
                ctx.warn(ctx.scope.source ?? "", "spec.egress",
                         "services \(unrouted.map(\.host).joined(separator: ", ")) share port \(port); without destination addresses bytes no route matches go to \(first.host)")
            }
            out.append(TCPProxyRoute(name: Naming.virtualHost(host: first.host, port: port),
                                     cluster: ctx.cluster(host: first.host, port: port, subset: nil)))
        }
        if sni, SidecarBuilder.allowsAny(ctx) {
            out.append(TCPProxyRoute(name: Naming.allowAny, match: TCPProxyMatch(serverNames: ["*"]), cluster: Naming.passthroughCluster))
        }
        return out
    }
}
