import MeshAPI

/// A sidecar's listeners: `outbound` with a virtual host per reachable service port (routes
/// from the VirtualService bound to `mesh` for that host, or a default route), and `inbound`
/// sending everything to the app.
///
/// Domains of a service port's virtual host: the short name (same namespace only),
/// `name.namespace`, `name.namespace.svc` and the FQDN, each with `:PORT`; the service's
/// lowest HTTP port also gets them without a port.
enum SidecarBuilder {
    static func build(_ ctx: TranslationContext) -> (listeners: [Listener], routeConfigs: [RouteConfig]) {
        let proxy = ctx.proxy
        var listeners = [Listener(name: Naming.outbound, address: proxy.address, port: proxy.outboundPort,
                                  routeConfig: Naming.outbound)]
        var configs = [RouteConfig(name: Naming.outbound, virtualHosts: outbound(ctx))]
        ctx.outboundListeners = [Naming.outbound]
        if let app = proxy.appPort {
            let cluster = Naming.inboundCluster(appPort: app)
            listeners.append(Listener(name: Naming.inbound, address: proxy.address, port: proxy.inboundPort,
                                      routeConfig: Naming.inbound))
            configs.append(RouteConfig(name: Naming.inbound, virtualHosts: [
                VirtualHost(name: "inbound|\(app)", domains: ["*"], routes: [RouteBuilder.defaultRoute(cluster: cluster)]),
            ]))
            ctx.inboundListeners = [Naming.inbound]
        }
        return (listeners, configs)
    }

    /// The inbound cluster, when the sidecar fronts an app.
    static func inboundCluster(_ proxy: ProxyIdentity) -> Cluster? {
        proxy.appPort.map {
            Cluster(name: Naming.inboundCluster(appPort: $0), endpoints: [Endpoint(address: "127.0.0.1", port: $0)])
        }
    }

    private static func outbound(_ ctx: TranslationContext) -> [VirtualHost] {
        let proxy = ctx.proxy
        let services = ctx.registry.services.filter {
            ctx.scope.visible(namespace: $0.namespace, host: $0.host, exportTo: $0.exportTo)
        }
        let meshServices = ctx.index.virtualServices.filter {
            $0.spec.appliesToMesh && ConfigIndex.exported($0.spec.exportTo, from: $0.namespace, to: proxy.namespace)
        }
        /// The VirtualService for a host: the first naming it exactly, else the longest wildcard covering it.
        func owner(_ host: String) -> Config<VirtualService>? {
            var best: (Config<VirtualService>, Int)?
            for vs in meshServices {
                for h in vs.spec.hosts {
                    let pattern = HostNames.fqdn(h, namespace: vs.namespace)
                    guard HostNames.matches(pattern: pattern, host: host),
                          ctx.scope.visible(namespace: vs.namespace, host: pattern, exportTo: []) else { continue }
                    let score = pattern == host ? Int.max : pattern.count
                    if best == nil || score > best!.1 { best = (vs, score) }
                }
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
            for (k, port) in service.ports.filter({ $0.protocol.isHTTP }).enumerated() {
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
                    routes = [RouteBuilder.defaultRoute(cluster: ctx.cluster(host: service.host, port: port.number, subset: nil))]
                }
                ctx.vhostsByService[service.host, default: []].insert(name)
                vhosts.append(VirtualHost(name: name, domains: domains, routes: routes))
            }
        }
        // Hosts a VirtualService names that no service defines (external names, wildcards).
        for vs in meshServices {
            for h in vs.spec.hosts {
                let fqdn = HostNames.fqdn(h, namespace: vs.namespace)
                guard !services.contains(where: { $0.host == fqdn }), owner(fqdn)?.id == vs.id else { continue }
                let domains = HostNames.aliases(of: fqdn, clientNamespace: proxy.namespace).filter { claimed.insert($0).inserted }
                guard !domains.isEmpty else { continue }
                let routes = RouteBuilder(ctx: ctx, gateway: "mesh", port: nil, service: nil).routes(vs)
                let name = Naming.virtualHost(virtualService: vs.namespace, vs.name)
                ctx.vhostsByVirtualService[vs.id, default: []].insert(name)
                vhosts.append(VirtualHost(name: name, domains: domains, routes: routes))
            }
        }
        return vhosts
    }
}
