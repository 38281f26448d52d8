import MeshAPI
import NIOHTTP1
import Transport

/// The route picked for a request.
/// Three references: a stream copies it several times per request (the cached route, the
/// router's lookup), and a copy of the whole `Route` retained each of its many fields.
public struct SelectedRoute: Sendable {
    public let virtualHost: String
    public let compiled: CompiledRoute
    /// The virtual host's `perFilterConfig`, under the route's own.
    public let hostFilterConfig: [String: JSONValue]?
    public var route: Route { compiled.route }
    public var name: String { compiled.route.name ?? "" }

    public init(virtualHost: String, compiled: CompiledRoute, hostFilterConfig: [String: JSONValue]? = nil) {
        self.virtualHost = virtualHost
        self.compiled = compiled
        self.hostFilterConfig = hostFilterConfig
    }

    /// The most specific per-route config for a filter: the route's, else its virtual host's.
    public func perFilterConfig(_ filterName: String) -> JSONValue? {
        compiled.route.perFilterConfig?[filterName] ?? hostFilterConfig?[filterName]
    }
}

/// A route with what is parsed from it once per snapshot; shared by reference.
public final class CompiledRoute: Sendable {
    public let route: Route
    /// Unique within one snapshot: what per-route filter state is keyed by.
    public let id: Int
    let pathRegex: RE2Regex?
    let headerRegexes: [RE2Regex?]
    let queryRegexes: [RE2Regex?]
    /// The route action's `regexRewrite` pattern, its substitution checked.
    package let rewriteRegex: RE2Regex?
    /// The route's retry policy, parsed once (nil: none, or no retries).
    let retryPolicy: CompiledRetryPolicy?
    /// Its virtual host's `includeRequestAttemptCount`.
    let sendsAttemptCount: Bool

    package init(_ route: Route, at path: String, id: Int = 0, sendsAttemptCount: Bool = false) throws {
        self.route = route
        self.id = id
        self.sendsAttemptCount = sendsAttemptCount
        let m = route.match
        let kinds = [m.prefix, m.path, m.safeRegex].compactMap { $0 }
        guard kinds.count == 1 else {
            throw ConfigError(path: path + ".match", reason: "exactly one of prefix, path, safeRegex is required")
        }
        pathRegex = try CompiledRoute.regex(m.safeRegex, at: path + ".match.safeRegex")
        headerRegexes = try (m.headers ?? []).enumerated().map { i, h in
            try CompiledRoute.regex(h.safeRegex, at: path + ".match.headers[\(i)].safeRegex")
        }
        queryRegexes = try (m.queryParams ?? []).enumerated().map { i, q in
            try CompiledRoute.regex(q.safeRegex, at: path + ".match.queryParams[\(i)].safeRegex")
        }
        let rewrite = route.route?.regexRewrite
        rewriteRegex = try CompiledRoute.regex(rewrite?.pattern, at: path + ".route.regexRewrite.pattern")
        if let rewriteRegex, let rewrite {
            do {
                try rewriteRegex.checkRewrite(rewrite.substitution)
            } catch {
                throw ConfigError(path: path + ".route.regexRewrite.substitution", reason: error.description)
            }
        }
        retryPolicy = route.route?.retryPolicy.flatMap { ($0.numRetries ?? 1) > 0 ? CompiledRetryPolicy($0) : nil }
        let actions = [route.route != nil, route.directResponse != nil, route.redirect != nil].filter { $0 }.count
        if actions != 1 {
            throw ConfigError(path: path, reason: "a route needs exactly one of route, redirect, directResponse")
        }
        if let action = route.route {
            let clusters = action.cluster.map { [$0] } ?? action.weightedClusters?.map(\.name) ?? []
            if clusters.isEmpty {
                throw ConfigError(path: path + ".route", reason: "cluster or weightedClusters is required")
            }
            if let w = action.weightedClusters, w.contains(where: { $0.weight < 0 }) || w.reduce(0, { $0 + $1.weight }) == 0 {
                throw ConfigError(path: path + ".route.weightedClusters", reason: "weights must be non-negative and not all zero")
            }
        }
    }

    /// A safeRegex compiled by RE2 (linear-time matching; Envoy's full-match semantics and
    /// default program-size limit), or the field path and RE2's reason.
    private static func regex(_ pattern: String?, at path: String) throws -> RE2Regex? {
        guard let pattern else { return nil }
        do {
            return try RE2Regex(pattern)
        } catch {
            throw ConfigError(path: path, reason: error.description)
        }
    }

    func matches(path fullPath: String, authority: String, method: String, headers: HTTPHeaders) -> Bool {
        let m = route.match
        // The path without its query, as a slice: splitting made an array per request.
        let queryStart = fullPath.firstIndex(of: "?")
        let path = fullPath[..<(queryStart ?? fullPath.endIndex)]
        if let prefix = m.prefix, !path.hasPrefix(prefix) { return false }
        if let exact = m.path, path != exact { return false }
        if let re = pathRegex, !re.wholeMatch(path) { return false }
        if let methods = m.methods, !methods.contains(method) { return false }
        for (i, h) in (m.headers ?? []).enumerated() {
            let values: [Substring] = switch h.name {
            case ":authority": [Substring(authority)]
            case ":method": [Substring(method)]
            default: headers[canonicalForm: h.name]
            }
            var ok: Bool
            if let present = h.present {
                ok = present == !values.isEmpty
            } else if values.isEmpty {
                ok = false
            } else {
                let value = values.joined(separator: ",")
                if let exact = h.exact { ok = value == exact }
                else if let prefix = h.prefix { ok = value.hasPrefix(prefix) }
                else if let re = headerRegexes[i] { ok = re.wholeMatch(value) }
                else { ok = true }
            }
            if h.invert == true { ok.toggle() }
            if !ok { return false }
        }
        if let query = m.queryParams, !query.isEmpty {
            let params = QueryString(queryStart.map { fullPath[fullPath.index(after: $0)...] } ?? "")
            for (i, q) in query.enumerated() {
                let value = params.first(q.name)
                let ok: Bool
                if let present = q.present { ok = present == (value != nil) }
                else if let value {
                    if let exact = q.exact { ok = value == exact }
                    else if let prefix = q.prefix { ok = value.hasPrefix(prefix) }
                    else if let re = queryRegexes[i] { ok = re.wholeMatch(value) }
                    else { ok = true }
                } else { ok = false }
                if !ok { return false }
            }
        }
        return true
    }
}

/// A RouteConfig compiled for matching: virtual hosts by domain, routes in order.
public struct RouteTable: Sendable {
    struct Host: Sendable {
        let name: String
        let domains: [String]
        let routes: [CompiledRoute]
        let perFilterConfig: [String: JSONValue]?
    }
    let hosts: [Host]

    /// Route ids are `firstRouteID` onwards, in order; `routeCount` tells how many were used.
    init(_ config: RouteConfig, at path: String, firstRouteID: Int = 0) throws {
        var id = firstRouteID
        hosts = try config.virtualHosts.enumerated().map { hi, vh in
            Host(name: vh.name, domains: vh.domains.map { $0.lowercased() },
                 routes: try vh.routes.enumerated().map { ri, r in
                     defer { id += 1 }
                     return try CompiledRoute(r, at: "\(path).virtualHosts[\(hi)].routes[\(ri)]", id: id,
                                              sendsAttemptCount: vh.includeRequestAttemptCount ?? false)
                 }, perFilterConfig: vh.perFilterConfig)
        }
    }

    var routeCount: Int { hosts.reduce(0) { $0 + $1.routes.count } }

    /// The compiled route at virtual host `host`, position `index` (as in the RouteConfig).
    public func compiledRoute(host: Int, index: Int) -> CompiledRoute { hosts[host].routes[index] }

    /// Envoy's domain order: exact, then suffix wildcards (longest first), then prefix wildcards, then "*".
    public func select(authority: String, path: String, method: String, headers: HTTPHeaders) -> SelectedRoute? {
        let full = authority.lowercased()
        guard let vh = pickHost(Self.stripPort(full), authority: full) else { return nil }
        for r in vh.routes where r.matches(path: path, authority: authority, method: method, headers: headers) {
            return SelectedRoute(virtualHost: vh.name, compiled: r, hostFilterConfig: vh.perFilterConfig)
        }
        return nil
    }

    private func pickHost(_ host: String, authority: String) -> Host? {
        var best: (Host, Int)?
        for h in hosts {
            for d in h.domains {
                let score: Int
                if d == authority, d != host { score = 2_000_000 }
                else if d == host || d == Self.stripPort(d) && d == host { score = 1_000_000 }
                else if d == "*" { score = 0 }
                else if d.hasPrefix("*"), host.hasSuffix(d.dropFirst()) { score = 1000 + d.count }
                else if d.hasSuffix("*"), host.hasPrefix(d.dropLast()) { score = 500 + d.count }
                else { continue }
                if best == nil || score > best!.1 { best = (h, score) }
            }
        }
        return best?.0
    }

    static func stripPort(_ authority: String) -> String {
        if authority.hasPrefix("[") {
            if let end = authority.firstIndex(of: "]") { return String(authority[...end]) }
            return authority
        }
        if let colon = authority.lastIndex(of: ":") { return String(authority[..<colon]) }
        return authority
    }
}
