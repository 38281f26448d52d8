#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI

/// Translates a VirtualService's http routes into MeshAPI routes for one place: a gateway
/// (`mesh` for sidecars) and a port. Each match block becomes a route (blocks are OR'd);
/// routes keep the VirtualService's order and its http route `name`.
///
/// Match mapping: uri exact/prefix/regex → path/prefix/safeRegex (ignoreUriCase → a `(?i)`
/// regex); headers → header matchers (`{}` = present); withoutHeaders → inverted matchers;
/// method exact → methods, otherwise a `:method` matcher; authority → a `:authority` matcher
/// (the authority as sent, port included); scheme → an `x-forwarded-proto` matcher (the proxy
/// sets it from the connection); queryParams → query matchers (`exact: ""` = present); port,
/// gateways, sourceLabels and sourceNamespace select which blocks apply here.
struct RouteBuilder {
    let ctx: TranslationContext
    /// `mesh`, or the Gateway's `namespace/name`.
    let gateway: String
    /// The service port (sidecar) or server port (gateway) being built; nil: any.
    let port: Int?
    /// The service the routes are for, when one (a sidecar's virtual host).
    let service: RegistryService?

    func routes(_ vs: Config<VirtualService>) -> [Route] {
        var out: [Route] = []
        ctx.use(vs.id)
        for (i, http) in vs.spec.http.enumerated() {
            let path = "spec.http[\(i)]"
            let blocks: [HTTPMatchRequest?] = http.match.isEmpty ? [nil] : http.match.filter { applies($0, vs) }
            guard !blocks.isEmpty else { continue }
            // Delegation was resolved by ConfigIndex; what is left could not be (and was warned).
            if http.delegate != nil { continue }
            for block in blocks {
                var route = Route(name: http.name, match: match(block))
                if let redirect = http.redirect {
                    route.redirect = self.redirect(redirect)
                } else if let direct = http.directResponse {
                    route.directResponse = directResponse(direct)
                } else {
                    guard let action = action(http, route.match, vs, path) else { continue }
                    route.route = action
                }
                route.headers = headers(http, vs.id, path)
                route.perFilterConfig = RouteFilterBuilder.perFilterConfig(http, ctx, vs.id, path)
                out.append(route)
                if let name = http.name { ctx.routesByVirtualService[vs.id, default: []].insert(name) }
            }
        }
        return out
    }

    /// The route to a service port's own cluster, when no VirtualService routes it. Outbound,
    /// it has Istio's default retry policy; inbound (the local app), none, as Istio.
    static func defaultRoute(cluster: String, outbound: Bool) -> Route {
        Route(name: Naming.defaultRoute, match: RouteMatch(prefix: "/"),
              route: RouteAction(cluster: cluster, timeoutMs: 0, retryPolicy: outbound ? defaultRetryPolicy : nil))
    }

    // MARK: which blocks apply

    private func applies(_ m: HTTPMatchRequest, _ vs: Config<VirtualService>) -> Bool {
        if !m.gateways.isEmpty {
            let names = m.gateways.map { $0 == "mesh" ? "mesh" : Self.qualified($0, vs.namespace) }
            guard names.contains(gateway) else { return false }
        }
        if let p = m.port, let port, p != port { return false }
        if !m.sourceLabels.isEmpty, !ctx.proxy.labels.matches(m.sourceLabels) { return false }
        if let ns = m.sourceNamespace, ns != ctx.proxy.namespace { return false }
        return true
    }

    static func qualified(_ ref: String, _ namespace: String) -> String {
        ref.contains("/") ? ref : "\(namespace)/\(ref)"
    }

    // MARK: match

    private func match(_ m: HTTPMatchRequest?) -> RouteMatch {
        var out = RouteMatch(prefix: "/")
        guard let m else { return out }
        if let uri = m.uri {
            out.prefix = nil
            if m.ignoreUriCase == true {
                out.safeRegex = Self.caseInsensitiveRegex(uri)
            } else {
                out.path = uri.exact
                out.prefix = uri.prefix
                out.safeRegex = uri.regex
            }
            if out.path == nil && out.prefix == nil && out.safeRegex == nil { out.prefix = "/" }
        }
        var headers: [HeaderMatcher] = []
        for (name, sm) in m.headers.sorted(by: { $0.key < $1.key }) { headers.append(Self.header(name, sm)) }
        for (name, sm) in m.withoutHeaders.sorted(by: { $0.key < $1.key }) {
            var h = Self.header(name, sm)
            if sm.isEmpty { h.present = false } else { h.invert = true }
            headers.append(h)
        }
        if let method = m.method {
            if let e = method.exact { out.methods = [e] } else { headers.append(Self.header(":method", method)) }
        }
        if let authority = m.authority { headers.append(Self.header(":authority", authority)) }
        if let scheme = m.scheme { headers.append(Self.header("x-forwarded-proto", scheme)) }
        out.headers = headers.isEmpty ? nil : headers
        let query = m.queryParams.sorted(by: { $0.key < $1.key }).map { name, sm -> QueryParameterMatcher in
            if sm.isEmpty || sm.exact == "" { return QueryParameterMatcher(name: name, present: true) }
            return QueryParameterMatcher(name: name, exact: sm.exact, prefix: sm.prefix, safeRegex: sm.regex)
        }
        out.queryParams = query.isEmpty ? nil : query
        return out
    }

    private static func header(_ name: String, _ sm: StringMatch) -> HeaderMatcher {
        // Header names match case-insensitively (Istio accepts `End-User`); proxies see them lowercased.
        let name = name.lowercased()
        if sm.isEmpty { return HeaderMatcher(name: name, present: true) }
        return HeaderMatcher(name: name, exact: sm.exact, prefix: sm.prefix, safeRegex: sm.regex)
    }

    /// The regex a uri match with ignoreUriCase becomes (validation checks it compiles too).
    static func caseInsensitiveRegex(_ uri: StringMatch) -> String? {
        if let e = uri.exact { return "(?i)" + escape(e) }
        if let p = uri.prefix { return "(?i)" + escape(p) + ".*" }
        if let r = uri.regex { return "(?i)" + r }
        return nil
    }

    static func escape(_ literal: String) -> String {
        var out = ""
        for ch in literal {
            if "\\^$.|?*+()[]{}".contains(ch) { out.append("\\") }
            out.append(ch)
        }
        return out
    }

    // MARK: actions

    private func action(_ http: HTTPRoute, _ match: RouteMatch, _ vs: Config<VirtualService>, _ path: String) -> RouteAction? {
        var clusters: [(String, Int)] = []
        for d in http.route {
            guard let dest = d.destination, let host = dest.host else { continue }
            let fqdn = HostNames.fqdn(host, namespace: vs.namespace)
            let port = dest.port?.number ?? defaultPort(for: fqdn)
            clusters.append((ctx.cluster(host: fqdn, port: port, subset: dest.subset), d.weight ?? 0))
        }
        guard !clusters.isEmpty else { return nil }
        var action = RouteAction(timeoutMs: http.timeoutMs ?? 0)
        if clusters.count == 1 {
            action.cluster = clusters[0].0
        } else {
            let allZero = clusters.allSatisfy { $0.1 == 0 }
            action.weightedClusters = clusters.map { WeightedCluster(name: $0.0, weight: allZero ? 1 : $0.1) }
        }
        if let rewrite = http.rewrite {
            if let uri = rewrite.uri {
                // The router rewrites a matched prefix; other matches get the whole path replaced.
                if match.prefix != nil {
                    action.prefixRewrite = uri
                } else {
                    action.pathRewrite = uri
                }
            }
            if let rr = rewrite.uriRegexRewrite, let pattern = rr.match, let substitution = rr.rewrite {
                action.regexRewrite = RegexRewrite(pattern: pattern, substitution: substitution)
            }
            action.hostRewrite = rewrite.authority
        }
        action.retryPolicy = retryPolicy(http.retries, vs.id, path)
        action.requestMirrorPolicies = mirrorPolicies(http, vs)
        return action
    }

    /// A destination without a port: the port being built when it is the same service,
    /// else the service's only (or lowest) port, else 80.
    func defaultPort(for host: String) -> Int {
        if let service, service.host == host, let port { return port }
        return ctx.registry.service(host: host)?.ports.first?.number ?? port ?? 80
    }

    private func redirect(_ r: HTTPRedirect) -> RedirectAction {
        var port = r.port
        if r.derivePort == "FROM_PROTOCOL_DEFAULT" { port = r.scheme == "https" ? 443 : 80 }
        return RedirectAction(uri: r.uri, authority: r.authority, scheme: r.scheme, port: port,
                              responseCode: r.redirectCode ?? 301)
    }

    private func directResponse(_ d: HTTPDirectResponse) -> DirectResponse {
        var body = d.body?.string
        if body == nil, let b = d.body?.bytes, let data = Data(base64Encoded: b) {
            body = String(decoding: data, as: UTF8.self)
        }
        return DirectResponse(status: d.status ?? 200, body: body)
    }

    /// The route's headers, with a single destination's own headers merged in.
    private func headers(_ http: HTTPRoute, _ id: String, _ path: String) -> HeaderOperations? {
        var request = http.headers?.request?.mutation
        var response = http.headers?.response?.mutation
        let perDestination = http.route.compactMap(\.headers)
        if http.route.count == 1, let d = perDestination.first {
            request = Self.merge(request, d.request?.mutation)
            response = Self.merge(response, d.response?.mutation)
        } else if !perDestination.isEmpty {
            ctx.warn(id, path + ".route", "per-destination headers with several destinations are not supported yet; ignored")
        }
        guard request != nil || response != nil else { return nil }
        return HeaderOperations(request: request, response: response)
    }

    private static func merge(_ a: HeaderMutation?, _ b: HeaderMutation?) -> HeaderMutation? {
        guard let a else { return b }
        guard let b else { return a }
        let set = (a.set ?? [:]).merging(b.set ?? [:]) { $1 }
        let add = (a.add ?? [:]).merging(b.add ?? [:]) { $1 }
        let remove = (a.remove ?? []) + (b.remove ?? [])
        return HeaderMutation(set: set.isEmpty ? nil : set, add: add.isEmpty ? nil : add, remove: remove.isEmpty ? nil : remove)
    }
}
