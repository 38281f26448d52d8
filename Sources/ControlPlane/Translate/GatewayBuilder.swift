import MeshAPI

/// A gateway's listeners: one per server port of the Gateways whose selector matches the
/// proxy's labels, with a virtual host per VirtualService bound to them. A virtual host's
/// domains are the intersections of the server's hosts and the VirtualService's hosts.
/// HTTPS servers terminate TLS (`ServerTLSBuilder`), each server with its own certificate
/// chosen by SNI among its hosts, as Istio makes one filter chain per server; `httpsRedirect`
/// answers every request with a 301 to https.
enum GatewayBuilder {
    static func build(_ ctx: TranslationContext) -> (listeners: [Listener], routeConfigs: [RouteConfig]) {
        let gateways = ctx.index.gateways.filter { ctx.proxy.labels.matches($0.spec.selector) }
        for gw in gateways { ctx.use(gw.id) }
        var byPort: [Int: [(gateway: Config<Gateway>, server: Server, index: Int)]] = [:]
        for gw in gateways {
            for (i, s) in gw.spec.servers.enumerated() {
                if let n = s.port?.number { byPort[n, default: []].append((gw, s, i)) }
            }
        }
        var listeners: [Listener] = []
        var configs: [RouteConfig] = []
        for port in byPort.keys.sorted() {
            let listenerName = Naming.gatewayListener(port: port)
            var tls: [ListenerTLS] = []
            var claimedNames: [String: String] = [:]
            var meshTLS: MeshTLSMode?
            var plain = false
            var served: [(gateway: Config<Gateway>, server: Server)] = []
            var passthrough: [(gateway: Config<Gateway>, server: Server, index: Int)] = []
            for (gw, s, i) in byPort[port]! {
                let path = "spec.servers[\(i)]"
                let proto = s.port?.effectiveProtocol ?? .unspecified
                switch TCPGateway.kind(of: s) {
                case .bytes:
                    passthrough.append((gw, s, i))
                    continue
                case .unsupported(let why):
                    ctx.warn(gw.id, path + ".tls.mode", why + "; server skipped")
                    continue
                case .http:
                    break
                }
                if proto == .https, s.tls?.mode == "ISTIO_MUTUAL" {
                    // The gateway's own workload certificate; clients need one from the mesh root.
                    meshTLS = .strict
                } else if proto == .https {
                    guard let t = s.tls, ServerTLSBuilder.terminatingModes.contains(t.mode ?? "") else {
                        ctx.warn(gw.id, path + ".tls.mode", "meshd terminates TLS in SIMPLE, MUTUAL, OPTIONAL_MUTUAL and ISTIO_MUTUAL modes on HTTPS servers; server skipped")
                        continue
                    }
                    let names = ServerTLSBuilder.serverNames(s)
                    guard let entry = ServerTLSBuilder.entry(t, serverNames: names, gw.id, path + ".tls", ctx) else { continue }
                    // Envoy refuses two filter chains with the same match; the first server keeps a name.
                    for name in names ?? ["*"] {
                        if let other = claimedNames[name] {
                            ctx.warn(gw.id, path + ".hosts", "\(name) on port \(port) already has a certificate from \(other); that one is served")
                        } else {
                            claimedNames[name] = "\(gw.id) \(path)"
                        }
                    }
                    tls.append(entry)
                } else if proto.isHTTP {
                    plain = true
                } else {
                    ctx.warn(gw.id, path, "\(proto.rawValue) servers are not supported yet (HTTP and HTTPS only); server skipped")
                    continue
                }
                served.append((gw, s))
                ctx.listenersByGateway[gw.id, default: []].insert(listenerName)
            }
            if !passthrough.isEmpty {
                if served.isEmpty {
                    if let listener = TCPGateway.listener(port: port, passthrough.map { ($0.gateway, $0.server) }, ctx) {
                        listeners.append(listener)
                        for (gw, _, _) in passthrough { ctx.listenersByGateway[gw.id, default: []].insert(listenerName) }
                        ctx.outboundListeners.append(listenerName)
                    } else {
                        for (gw, s, i) in passthrough {
                            ctx.warn(gw.id, "spec.servers[\(i)]", s.tls?.mode == "AUTO_PASSTHROUGH"
                                     ? "no VirtualService has tcp or tls routes for port \(port), nor is a mesh service its hosts cover visible; no listener"
                                     : "no VirtualService has tcp or tls routes for port \(port); no listener")
                        }
                    }
                } else {
                    for (gw, _, i) in passthrough {
                        ctx.warn(gw.id, "spec.servers[\(i)]", "port \(port) already serves HTTP; TCP and TLS passthrough need a port of their own; server skipped")
                    }
                }
            }
            guard !served.isEmpty else { continue }
            if meshTLS != nil && (!tls.isEmpty || plain) {
                ctx.warn(served[0].gateway.id, "spec.servers", "port \(port) mixes ISTIO_MUTUAL with other servers; the listener uses its own certificate files or plaintext")
                meshTLS = nil
            }
            if !tls.isEmpty && plain {
                ctx.warn(served[0].gateway.id, "spec.servers", "port \(port) has both HTTP and HTTPS servers; the listener uses TLS")
            }
            let config = RouteConfig(name: Naming.gatewayRouteConfig(port: port),
                                     virtualHosts: virtualHosts(served, port: port, ctx))
            var listener = Listener(name: listenerName, address: ctx.proxy.address,
                                    port: ctx.proxy.gatewayPorts[port] ?? port,
                                    routeConfig: config.name,
                                    httpFilters: [StatsFilterBuilder.filter(for: ctx.proxy, reporter: .source)]
                                        + (RouteFilterBuilder.filters(for: config) ?? []))
            listener.meshTLS = meshTLS
            // One server for any name: plain `tls`; else an entry per server, picked by SNI.
            if tls.count == 1, tls[0].serverNames == nil {
                listener.tls = tls[0]
            } else if !tls.isEmpty {
                listener.tlsByServerName = tls
            }
            listeners.append(listener)
            configs.append(config)
            ctx.outboundListeners.append(listenerName)
        }
        return (listeners, configs)
    }

    private static func virtualHosts(_ served: [(gateway: Config<Gateway>, server: Server)], port: Int,
                                     _ ctx: TranslationContext) -> [VirtualHost] {
        var vhosts: [VirtualHost] = []
        var position: [String: Int] = [:]
        var claimed: [String: String] = [:]
        for (gw, server) in served {
            for vs in ctx.index.virtualServices(boundTo: gw)
            where ConfigIndex.exported(vs.spec.exportTo, from: vs.namespace, to: gw.namespace) {
                var domains = self.domains(server, gw, vs)
                guard !domains.isEmpty else { continue }
                let name = Naming.virtualHost(virtualService: vs.namespace, vs.name)
                domains = domains.filter { d in
                    if let other = claimed[d] {
                        if other != vs.id { ctx.warn(vs.id, "spec.hosts", "\(d) on port \(port) is already routed by \(other)") }
                        return false
                    }
                    claimed[d] = vs.id
                    return true
                }
                if let i = position[vs.id] {
                    vhosts[i].domains += domains
                    continue
                }
                guard !domains.isEmpty else { continue }
                let routes: [Route]
                if server.tls?.httpsRedirect == true {
                    routes = [Route(name: "https_redirect", match: RouteMatch(prefix: "/"),
                                    redirect: RedirectAction(scheme: "https", responseCode: 301))]
                } else {
                    routes = RouteBuilder(ctx: ctx, gateway: "\(gw.namespace)/\(gw.name)", port: port, service: nil).routes(vs)
                }
                position[vs.id] = vhosts.count
                ctx.vhostsByVirtualService[vs.id, default: []].insert(name)
                vhosts.append(VirtualHost(name: name, domains: domains, routes: routes, includeRequestAttemptCount: true))
            }
        }
        return vhosts
    }

    /// Server hosts (`[namespace/]host`) intersected with the VirtualService's hosts.
    static func domains(_ server: Server, _ gw: Config<Gateway>, _ vs: Config<VirtualService>) -> [String] {
        var out: [String] = []
        for sh in server.hosts {
            guard let pattern = hostPattern(sh, admitting: vs.namespace, gatewayNamespace: gw.namespace) else { continue }
            for h in vs.spec.hosts {
                let written = h.lowercased()
                for candidate in [written, HostNames.fqdn(written, namespace: vs.namespace)] {
                    if let d = HostNames.intersection(pattern, candidate), !out.contains(d) { out.append(d) }
                }
            }
        }
        return out
    }

    /// The host pattern of a server host `[namespace/]host` (lowercased) when its namespace part
    /// admits resources of `namespace` (`*` any, `.` the Gateway's own, `~` none); else nil.
    static func hostPattern(_ serverHost: String, admitting namespace: String, gatewayNamespace: String) -> String? {
        let parts = serverHost.split(separator: "/", maxSplits: 1).map(String.init)
        let (ns, pattern) = parts.count == 2 ? (parts[0], parts[1].lowercased()) : ("*", serverHost.lowercased())
        let admitted = switch ns {
        case "*": true
        case ".": namespace == gatewayNamespace
        case "~": false
        default: namespace == ns
        }
        return admitted ? pattern : nil
    }
}
