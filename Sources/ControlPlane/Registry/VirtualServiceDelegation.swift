/// Istio's VirtualService delegation: an http route of a root VirtualService with `delegate`
/// is replaced by the http routes of the delegate (a VirtualService without hosts), each
/// merged with the root route — matches intersected (a delegate match must narrow a root
/// match, else that delegate route is dropped), and the root's rewrite, timeout, retries,
/// fault, mirror, CORS and headers kept where the delegate sets none. One level only: a
/// delegate's own `delegate` routes are dropped.
package enum VirtualServiceDelegation {
    struct Outcome {
        var virtualServices: [Config<VirtualService>]
        /// (resource id, field path, what happened), for the translator's warnings.
        var warnings: [(String, String, String)] = []
    }

    static func resolve(_ all: [Config<VirtualService>]) -> Outcome {
        var out = Outcome(virtualServices: [])
        for vs in all {
            guard vs.spec.http.contains(where: { $0.delegate != nil }) else {
                out.virtualServices.append(vs)
                continue
            }
            var root = vs
            root.spec.http = []
            for (i, route) in vs.spec.http.enumerated() {
                guard let delegate = route.delegate else {
                    root.spec.http.append(route)
                    continue
                }
                let path = "spec.http[\(i)].delegate"
                let namespace = delegate.namespace ?? vs.namespace
                guard let target = all.first(where: { $0.name == delegate.name && $0.namespace == namespace }) else {
                    out.warnings.append((vs.id, path, "delegate VirtualService \(namespace)/\(delegate.name ?? "") not found; the route is skipped"))
                    continue
                }
                guard ConfigIndex.exported(target.spec.exportTo, from: target.namespace, to: vs.namespace) else {
                    out.warnings.append((vs.id, path, "delegate VirtualService \(target.id) is not exported to \(vs.namespace); the route is skipped"))
                    continue
                }
                for (j, leaf) in target.spec.http.enumerated() {
                    guard leaf.delegate == nil else {
                        out.warnings.append((target.id, "spec.http[\(j)].delegate", "delegation is one level deep; this route is skipped"))
                        continue
                    }
                    guard let merged = merge(root: route, leaf: qualified(leaf, namespace: target.namespace)) else {
                        out.warnings.append((target.id, "spec.http[\(j)].match",
                                             "conflicts with the match of \(vs.id) spec.http[\(i)] (a delegate may only narrow it); the route is skipped"))
                        continue
                    }
                    root.spec.http.append(merged)
                }
            }
            out.virtualServices.append(root)
        }
        return out
    }

    /// The delegate's destination hosts as FQDNs of its own namespace (the root may be elsewhere).
    private static func qualified(_ route: HTTPRoute, namespace: String) -> HTTPRoute {
        var r = route
        func fix(_ d: inout Destination?) {
            if let host = d?.host { d?.host = HostNames.fqdn(host, namespace: namespace) }
        }
        for k in r.route.indices { fix(&r.route[k].destination) }
        fix(&r.mirror)
        for k in r.mirrors.indices { fix(&r.mirrors[k].destination) }
        return r
    }

    static func merge(root: HTTPRoute, leaf: HTTPRoute) -> HTTPRoute? {
        var out = leaf
        guard let matches = merge(root.match, leaf.match) else { return nil }
        out.match = matches
        if let rootName = root.name {
            out.name = leaf.name.map { rootName + "-" + $0 } ?? rootName
        }
        if out.rewrite == nil { out.rewrite = root.rewrite }
        if out.directResponse == nil { out.directResponse = root.directResponse }
        if out.timeoutMs == nil { out.timeoutMs = root.timeoutMs }
        if out.retries == nil { out.retries = root.retries }
        if out.fault == nil { out.fault = root.fault }
        if out.mirror == nil { out.mirror = root.mirror }
        if out.mirrorPercent == nil { out.mirrorPercent = root.mirrorPercent }
        if out.mirrorPercentage == nil { out.mirrorPercentage = root.mirrorPercentage }
        if out.corsPolicy == nil { out.corsPolicy = root.corsPolicy }
        if out.mirrors.isEmpty { out.mirrors = root.mirrors }
        if out.headers == nil { out.headers = root.headers }
        return out
    }

    /// Every delegate match merged with each root match it does not conflict with; nil when
    /// some delegate match fits none.
    static func merge(_ roots: [HTTPMatchRequest], _ leaves: [HTTPMatchRequest]) -> [HTTPMatchRequest]? {
        if roots.isEmpty { return leaves }
        if leaves.isEmpty { return roots }
        var out: [HTTPMatchRequest] = []
        for leaf in leaves {
            let fitting = roots.filter { !conflicts($0, leaf) }
            if fitting.isEmpty { return nil }
            out += fitting.map { merge($0, leaf) }
        }
        return out
    }

    private static func merge(_ root: HTTPMatchRequest, _ leaf: HTTPMatchRequest) -> HTTPMatchRequest {
        var out = leaf
        if let rootName = root.name { out.name = leaf.name.map { rootName + "-" + $0 } ?? rootName }
        out.uri = leaf.uri ?? root.uri
        out.scheme = leaf.scheme ?? root.scheme
        out.method = leaf.method ?? root.method
        out.authority = leaf.authority ?? root.authority
        out.headers = root.headers.merging(leaf.headers) { $1 }
        out.withoutHeaders = root.withoutHeaders.merging(leaf.withoutHeaders) { $1 }
        out.queryParams = root.queryParams.merging(leaf.queryParams) { $1 }
        out.port = leaf.port ?? root.port
        out.sourceLabels = root.sourceLabels.merging(leaf.sourceLabels) { $1 }
        out.sourceNamespace = leaf.sourceNamespace ?? root.sourceNamespace
        if out.gateways.isEmpty { out.gateways = root.gateways }
        out.statPrefix = leaf.statPrefix ?? root.statPrefix
        return out
    }

    static func conflicts(_ root: HTTPMatchRequest, _ leaf: HTTPMatchRequest) -> Bool {
        for (r, l) in [(root.uri, leaf.uri), (root.scheme, leaf.scheme), (root.method, leaf.method), (root.authority, leaf.authority)]
        where conflicts(r, l) { return true }
        if leaf.headers.contains(where: { conflicts(root.headers[$0.key], $0.value) }) { return true }
        if leaf.withoutHeaders.contains(where: { conflicts(root.withoutHeaders[$0.key], $0.value) }) { return true }
        if leaf.queryParams.contains(where: { conflicts(root.queryParams[$0.key], $0.value) }) { return true }
        if (root.ignoreUriCase ?? false) != (leaf.ignoreUriCase ?? false) { return true }
        if let r = root.port, let l = leaf.port, r != l { return true }
        if let r = root.sourceNamespace, leaf.sourceNamespace != r { return true }
        for (key, value) in leaf.sourceLabels where root.sourceLabels[key].map({ $0 != value }) ?? false { return true }
        if !root.gateways.isEmpty, !leaf.gateways.isEmpty, !Set(leaf.gateways).isSubset(of: Set(root.gateways)) { return true }
        return false
    }

    /// Whether `leaf` can only narrow `root` (Istio's rules: regex on either side stands
    /// alone; an exact root takes the same exact; a prefix root takes a longer prefix or an
    /// exact under it).
    package static func conflicts(_ root: StringMatch?, _ leaf: StringMatch?) -> Bool {
        guard let root, let leaf else { return false }
        if root.regex != nil || leaf.regex != nil { return true }
        if let exact = root.exact { return leaf.exact != exact }
        if let prefix = root.prefix {
            if let p = leaf.prefix { return !p.hasPrefix(prefix) }
            if let e = leaf.exact { return !e.hasPrefix(prefix) }
        }
        return true
    }
}
