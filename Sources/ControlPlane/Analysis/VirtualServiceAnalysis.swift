/// VirtualService analyzers: gateways and hosts they name (IST0101, IST0132), destination
/// hosts, ports and subsets (IST0101, IST0112), conflicting mesh hosts (IST0109), and rules or
/// matches an earlier rule makes unreachable (IST0130, IST0131).
extension Analysis {
    mutating func virtualService(_ vs: Config<VirtualService>) {
        for (i, g) in vs.spec.gateways.enumerated() { gatewayRef(vs, g, "spec.gateways[\(i)]", checkHosts: true) }
        for (i, route) in vs.spec.http.enumerated() {
            let p = "spec.http[\(i)]"
            for (j, m) in route.match.enumerated() {
                for (k, g) in m.gateways.enumerated() { gatewayRef(vs, g, "\(p).match[\(j)].gateways[\(k)]", checkHosts: false) }
            }
            for (j, d) in route.route.enumerated() { destination(vs, d.destination, "\(p).route[\(j)].destination") }
            destination(vs, route.mirror, p + ".mirror", mirror: true)
            for (j, m) in route.mirrors.enumerated() { destination(vs, m.destination, "\(p).mirrors[\(j)].destination", mirror: true) }
        }
        for (i, route) in vs.spec.tcp.enumerated() {
            for (j, d) in route.route.enumerated() { destination(vs, d.destination, "spec.tcp[\(i)].route[\(j)].destination") }
        }
        for (i, route) in vs.spec.tls.enumerated() {
            for (j, d) in route.route.enumerated() { destination(vs, d.destination, "spec.tls[\(i)].route[\(j)].destination") }
        }
        unreachableRules(vs, "spec.http", vs.spec.http.map { r in r.match.map { m -> HTTPMatchRequest in var m = m; m.name = nil; return m } },
                         names: vs.spec.http.map(\.name), matchNames: vs.spec.http.map { $0.match.map(\.name) })
        unreachableRules(vs, "spec.tcp", vs.spec.tcp.map(\.match), names: nil, matchNames: nil)
        unreachableRules(vs, "spec.tls", vs.spec.tls.map(\.match), names: nil, matchNames: nil)
    }

    mutating func gatewayRef(_ vs: Config<VirtualService>, _ ref: String, _ path: String, checkHosts: Bool) {
        guard ref != "mesh" else { return }
        guard let gw = index.gateway(ref, from: vs.namespace) else {
            return add(.referencedResourceNotFound, vs, path, "Referenced gateway not found: \(Self.quoted(ref))")
        }
        guard checkHosts, !vs.spec.hosts.isEmpty else { return }
        // The gateway's hosts this VirtualService's namespace may bind (`ns/host`, `./host`, `*/host`).
        let hosts = gw.spec.servers.flatMap(\.hosts).compactMap { h -> String? in
            let parts = h.split(separator: "/", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { return h }
            let ns = parts[0] == "." ? gw.namespace : parts[0]
            return ns == "*" || ns == vs.namespace ? parts[1] : nil
        }
        let bound = hosts.contains { g in vs.spec.hosts.contains { HostNames.intersection(g.lowercased(), $0.lowercased()) != nil } }
        if !bound {
            add(.virtualServiceHostNotFoundInGateway, vs, path,
                "one or more host [\(vs.spec.hosts.joined(separator: " "))] defined in VirtualService \(vs.namespace)/\(vs.name) not found in Gateway \(gw.namespace)/\(gw.name).")
        }
    }

    mutating func destination(_ vs: Config<VirtualService>, _ d: Destination?, _ path: String, mirror: Bool = false) {
        guard let d, let host = d.host, !host.isEmpty else { return }
        let fqdn = HostNames.fqdn(host, namespace: vs.namespace)
        guard let service = registry.service(host: host, namespace: vs.namespace),
              ConfigIndex.exported(service.exportTo, from: service.namespace, to: vs.namespace) else {
            return add(.referencedResourceNotFound, vs, path + ".host", "Referenced \(mirror ? "mirror host" : "host") not found: \(Self.quoted(host))")
        }
        if let port = d.port?.number, service.port(port) == nil {
            add(.referencedResourceNotFound, vs, path + ".port.number", "Referenced host:port not found: \(Self.quoted("\(host):\(port)"))")
        } else if d.port == nil, service.ports.count > 1 {
            add(.virtualServiceDestinationPortSelectorRequired, vs, path + ".host",
                "This VirtualService routes to a service \(Self.quoted(host)) that exposes multiple ports [\(service.ports.map { String($0.number) }.joined(separator: " "))]. Specifying a port in the destination is required to disambiguate.")
        }
        if let subset = d.subset {
            let dr = index.destinationRule(for: fqdn, clientNamespace: vs.namespace)
            if !(dr?.spec.subsets.contains { $0.name == subset } ?? false) {
                add(.referencedResourceNotFound, vs, path + ".subset",
                    "Referenced \(mirror ? "mirror+subset" : "host+subset") in destinationrule not found: \(Self.quoted("\(host)+\(subset)"))")
            }
        }
    }

    /// Two VirtualServices for sidecars claiming the same host for the same namespaces (exportTo).
    mutating func meshHostConflicts() {
        var claims: [String: [Config<VirtualService>]] = [:]
        for vs in index.virtualServices where vs.spec.appliesToMesh {
            for h in Set(vs.spec.hosts.map { HostNames.fqdn($0, namespace: vs.namespace) }) { claims[h, default: []].append(vs) }
        }
        /// The namespaces a VirtualService is visible in; nil: all.
        func scope(_ vs: Config<VirtualService>) -> Set<String>? {
            let e = vs.spec.exportTo
            if e.isEmpty || e.contains("*") { return nil }
            return Set(e.map { $0 == "." ? vs.namespace : $0 })
        }
        var reported = Set<String>()
        for host in claims.keys.sorted() {
            let list = claims[host]!
            for vs in list where !reported.contains(vs.id) {
                let others = list.filter { o in
                    guard o.id != vs.id else { return false }
                    guard let a = scope(vs), let b = scope(o) else { return true }
                    return !a.isDisjoint(with: b)
                }
                guard !others.isEmpty else { continue }
                reported.insert(vs.id)
                let names = ([vs] + others).map { "\($0.namespace)/\($0.name)" }.sorted().joined(separator: ",")
                add(.conflictingMeshGatewayVirtualServiceHosts, vs, "metadata.name",
                    "The VirtualServices \(names) associated with mesh gateway define the same host \(host) which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.")
            }
        }
    }

    /// Istio's analyzeUnreachable*Rules: a rule after one without matches, a rule whose every
    /// match an earlier rule has (IST0130), and a match an earlier rule has (IST0131).
    mutating func unreachableRules<M: Equatable>(_ vs: Config<VirtualService>, _ base: String, _ rules: [[M]],
                                                  names: [String?]?, matchNames: [[String?]]?) {
        func ruleName(_ i: Int) -> String { names?[i].map { Self.quoted($0) } ?? "#\(i)" }
        var seen: [(match: M, rule: Int)] = []
        var catchAll: Int?
        for (i, matches) in rules.enumerated() {
            if matches.isEmpty {
                if catchAll != nil {
                    add(.virtualServiceUnreachableRule, vs, "\(base)[\(i)]",
                        "VirtualService rule \(ruleName(i)) not used (only the last rule can have no matches).")
                }
                catchAll = i
                continue
            }
            var duplicates = 0
            for (j, m) in matches.enumerated() {
                if catchAll != nil {
                    add(.virtualServiceUnreachableRule, vs, "\(base)[\(i)]",
                        "VirtualService rule \(ruleName(i)) not used (route without matches defined before).")
                    continue
                }
                if let earlier = seen.first(where: { $0.match == m }) {
                    let matchName = matchNames?[i][j].map { Self.quoted($0) } ?? "#\(j)"
                    add(.virtualServiceIneffectiveMatch, vs, "\(base)[\(i)].match[\(j)]",
                        "VirtualService rule \(ruleName(i)) match \(matchName) is not used (duplicate/overlapping match in rule \(ruleName(earlier.rule))).")
                    duplicates += 1
                } else {
                    seen.append((m, i))
                }
            }
            if duplicates == matches.count {
                add(.virtualServiceUnreachableRule, vs, "\(base)[\(i)]",
                    "VirtualService rule \(ruleName(i)) not used (all matches used by prior rules).")
            }
        }
    }
}
