import MeshAPI

/// Translates a VirtualService's `tcp` and `tls` routes into a TCP proxy listener's routes
/// for one place (a gateway, or `mesh`) and port. Each match block becomes a route (blocks
/// are OR'd); `tls` routes match on the ClientHello's SNI (`sniHosts`), bytes are passed
/// through untouched. port, gateways, sourceLabels and sourceNamespace select which blocks
/// apply here; destinationSubnets become destination prefixes.
struct TCPRouteBuilder {
    let ctx: TranslationContext
    /// `mesh`, or the Gateway's `namespace/name`.
    let gateway: String
    /// The service port (sidecar) or server port (gateway) being built.
    let port: Int
    /// Sidecar: the service the listener is for (its destination port is the default).
    let service: RegistryService?

    /// `tls: false` / `tcp: false` leave those routes out (a sidecar listener for bytes without
    /// TLS, or for TLS only).
    func routes(_ vs: Config<VirtualService>, tls includeTLS: Bool = true, tcp includeTCP: Bool = true) -> [TCPProxyRoute] {
        var out: [TCPProxyRoute] = []
        for (i, tls) in vs.spec.tls.enumerated() where includeTLS {
            for m in tls.match where applies(gateways: m.gateways, port: m.port, labels: m.sourceLabels,
                                              namespace: m.sourceNamespace, vs) {
                guard let target = destinations(tls.route, vs) else { continue }
                // "*" matches any name: no SNI condition at all.
                let names = m.sniHosts.contains("*") ? nil : m.sniHosts.map { $0.lowercased() }
                var route = target
                route.name = "\(vs.namespace)/\(vs.name)/tls[\(i)]"
                route.match = TCPProxyMatch(serverNames: names, sourcePrefixes: nil,
                                            destinationPrefixes: m.destinationSubnets.isEmpty ? nil : m.destinationSubnets)
                out.append(route)
            }
        }
        for (i, tcp) in vs.spec.tcp.enumerated() where includeTCP {
            let blocks: [TCPRoute.Match?] = tcp.match.isEmpty ? [nil] : tcp.match.map { $0 }
            for m in blocks {
                if let m, !applies(gateways: m.gateways, port: m.port, labels: m.sourceLabels, namespace: m.sourceNamespace, vs) {
                    continue
                }
                guard var route = destinations(tcp.route, vs) else { continue }
                route.name = "\(vs.namespace)/\(vs.name)/tcp[\(i)]"
                if let subnets = m?.destinationSubnets, !subnets.isEmpty {
                    route.match = TCPProxyMatch(destinationPrefixes: subnets)
                }
                out.append(route)
            }
        }
        return out
    }

    private func applies(gateways: [String], port p: Int?, labels: [String: String], namespace: String?,
                         _ vs: Config<VirtualService>) -> Bool {
        let names = gateways.isEmpty ? vs.spec.gateways : gateways
        if !names.isEmpty {
            let qualified = names.map { $0 == "mesh" ? "mesh" : RouteBuilder.qualified($0, vs.namespace) }
            guard qualified.contains(gateway) else { return false }
        } else if gateway != "mesh" {
            return false
        }
        if let p, p != port { return false }
        if !labels.isEmpty, !ctx.proxy.labels.matches(labels) { return false }
        if let namespace, namespace != ctx.proxy.namespace { return false }
        return true
    }

    private func destinations(_ route: [RouteDestination], _ vs: Config<VirtualService>) -> TCPProxyRoute? {
        var clusters: [(String, Int)] = []
        for d in route {
            guard let dest = d.destination, let host = dest.host else { continue }
            let fqdn = HostNames.fqdn(host, namespace: vs.namespace)
            let port = dest.port?.number ?? defaultPort(for: fqdn)
            clusters.append((ctx.cluster(host: fqdn, port: port, subset: dest.subset), d.weight ?? 0))
        }
        guard !clusters.isEmpty else { return nil }
        if clusters.count == 1 { return TCPProxyRoute(cluster: clusters[0].0) }
        let allZero = clusters.allSatisfy { $0.1 == 0 }
        return TCPProxyRoute(weightedClusters: clusters.map { WeightedCluster(name: $0.0, weight: allZero ? 1 : $0.1) })
    }

    private func defaultPort(for host: String) -> Int {
        if let service, service.host == host { return port }
        return ctx.registry.service(host: host)?.ports.first?.number ?? port
    }
}
