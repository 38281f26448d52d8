#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import Transport

/// VirtualService rules, after Istio's: hosts, match blocks, regexes, weights, one action per route.
enum VirtualServiceRules {
    static let retryOnTokens: Set<String> = [
        "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "envoy-ratelimited",
        "retriable-4xx", "refused-stream", "retriable-status-codes", "retriable-headers",
        "http3-post-connect-failure", "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
    ]
    static let redirectCodes: Set<Int> = [301, 302, 303, 307, 308]

    static func check(_ vs: VirtualService, _ c: inout Issues) {
        if vs.hosts.isEmpty {
            // Without hosts it is a delegate (Istio's rules for those).
            if !vs.gateways.isEmpty { c.add("spec.gateways", "delegate virtual service must have no gateways specified") }
            if !vs.tls.isEmpty { c.add("spec.tls", "delegate virtual service must have no tls route specified") }
            if !vs.tcp.isEmpty { c.add("spec.tcp", "delegate virtual service must have no tcp route specified") }
        }
        if !vs.appliesToGateway {
            for (i, route) in vs.http.enumerated() {
                for (j, m) in route.match.enumerated() {
                    for (field, map) in [("headers", m.headers), ("withoutHeaders", m.withoutHeaders)] {
                        for key in map.keys.sorted() where isJWTClaim(key) {
                            c.add("spec.http[\(i)].match[\(j)].\(field).\(key)",
                                  "JWT claim based routing (key: \(key)) is only supported for gateway, found no gateways: [\(vs.gateways.joined(separator: " "))]")
                        }
                    }
                }
            }
        }
        for (i, h) in vs.hosts.enumerated() {
            CommonRules.host(h, "spec.hosts[\(i)]", &c)
            if h == "*" && vs.appliesToMesh {
                c.add("spec.hosts[\(i)]", "wildcard host * is not allowed for virtual services bound to the mesh gateway")
            }
        }
        for (i, g) in vs.gateways.enumerated() { gatewayReference(g, "spec.gateways[\(i)]", &c) }
        if vs.http.isEmpty && vs.tcp.isEmpty && vs.tls.isEmpty {
            c.add("spec", "http, tcp or tls routes are required")
        }
        CommonRules.exportTo(vs.exportTo, "spec.exportTo", &c)
        for (i, route) in vs.http.enumerated() { http(route, "spec.http[\(i)]", &c) }
        for (i, route) in vs.tcp.enumerated() {
            let p = "spec.tcp[\(i)]"
            for (j, m) in route.match.enumerated() {
                CommonRules.port(m.port, "\(p).match[\(j)].port", &c)
                for (k, g) in m.gateways.enumerated() { gatewayReference(g, "\(p).match[\(j)].gateways[\(k)]", &c) }
            }
            if route.route.isEmpty { c.add(p + ".route", "TCP route is required") }
            destinations(route.route.map { ($0.destination, $0.weight) }, p + ".route", &c)
        }
        for (i, route) in vs.tls.enumerated() {
            let p = "spec.tls[\(i)]"
            if route.match.isEmpty { c.add(p + ".match", "a TLS route needs at least one match") }
            for (j, m) in route.match.enumerated() {
                if m.sniHosts.isEmpty { c.add("\(p).match[\(j)].sniHosts", "at least one SNI host is required") }
                for (k, sni) in m.sniHosts.enumerated() { sniHost(sni, vs, "\(p).match[\(j)].sniHosts[\(k)]", &c) }
                CommonRules.port(m.port, "\(p).match[\(j)].port", &c)
            }
            if route.route.isEmpty { c.add(p + ".route", "TLS route is required") }
            destinations(route.route.map { ($0.destination, $0.weight) }, p + ".route", &c)
        }
    }

    /// `mesh`, `name` (a DNS name, as Istio's legacy `name.namespace` form) or `namespace/name`
    /// (two DNS labels), as Istio's validateGatewayNames.
    static func gatewayReference(_ g: String, _ path: String, _ c: inout Issues) {
        let parts = g.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 else {
            if let reason = CommonRules.fqdnError(g) { c.add(path, reason) }
            return
        }
        if parts[0].isEmpty || parts[1].isEmpty { c.add(path, "config namespace and gateway name cannot be empty") }
        if !CommonRules.isDNSLabel(parts[0]) { c.add(path, "invalid value for namespace: \"\(parts[0])\"") }
        if !CommonRules.isDNSLabel(parts[1]) { c.add(path, "invalid value for gateway name: \"\(parts[1])\"") }
    }

    /// `@request.auth.claims.NAME` or `@request.auth.claims[NAME]…`: a JWT claim, not a header.
    static func isJWTClaim(_ key: String) -> Bool {
        key.hasPrefix("@request.auth.claims.") || key.hasPrefix("@request.auth.claims[")
    }

    /// An SNI host: a domain with at most a leading wildcard label, covered by one of the hosts.
    static func sniHost(_ sni: String, _ vs: VirtualService, _ path: String, _ c: inout Issues) {
        if let reason = CommonRules.wildcardDomainError(sni) {
            if !ServiceEntryRules.isIP(sni) { c.add(path, reason) }
            return
        }
        guard !vs.hosts.contains(where: { HostNames.matches(pattern: $0, host: sni) }) else { return }
        c.add(path, "SNI host \"\(sni)\" is not a compatible subset of any of the virtual service hosts: [\(vs.hosts.joined(separator: ", "))]")
    }

    static func http(_ route: HTTPRoute, _ p: String, _ c: inout Issues) {
        let actions = [!route.route.isEmpty, route.redirect != nil, route.directResponse != nil, route.delegate != nil]
            .filter { $0 }.count
        if actions == 0 { c.add(p, "one of route, redirect, directResponse or delegate is required") }
        if actions > 1 { c.add(p, "only one of route, redirect, directResponse or delegate may be set") }
        if route.redirect != nil && route.rewrite != nil { c.add(p + ".rewrite", "rewrite cannot be used with redirect") }
        if route.mirror != nil && !route.mirrors.isEmpty { c.add(p + ".mirrors", "HTTP route cannot contain both mirror and mirrors") }
        if let reason = authorityRewriteConflict(route) { c.add(p + ".headers.request", reason) }
        for (j, m) in route.match.enumerated() { match(m, "\(p).match[\(j)]", &c) }
        destinations(route.route.map { ($0.destination, $0.weight) }, p + ".route", &c)
        for (j, d) in route.route.enumerated() { headers(d.headers, "\(p).route[\(j)].headers", &c) }
        headers(route.headers, p + ".headers", &c)
        if let r = route.redirect {
            if let code = r.redirectCode, !redirectCodes.contains(code) {
                c.add(p + ".redirect.redirectCode", "redirect code \(code) must be one of 301, 302, 303, 307, 308")
            }
            if r.port != nil && r.derivePort != nil { c.add(p + ".redirect", "only one of port or derivePort may be set") }
            if r.uri != nil && r.prefixRewrite != nil { c.add(p + ".redirect", "redirect may only specify one of uri or prefix_rewrite") }
            if let scheme = r.scheme, scheme != "http" && scheme != "https" {
                c.add(p + ".redirect.scheme", "invalid redirect scheme, must be \"http\" or \"https\"")
            }
            CommonRules.port(r.port, p + ".redirect.port", &c)
        }
        if let d = route.directResponse {
            if let status = d.status {
                if !(200...599).contains(status) { c.add(p + ".directResponse.status", "status \(status) must be in 200-599") }
            } else {
                c.add(p + ".directResponse.status", "status is required")
            }
            if let body = d.body {
                if body.string != nil && body.bytes != nil { c.add(p + ".directResponse.body", "only one of string or bytes may be set") }
                if let b = body.bytes, Data(base64Encoded: b) == nil { c.add(p + ".directResponse.body.bytes", "must be base64") }
            }
        }
        if let d = route.delegate, (d.name ?? "").isEmpty { c.add(p + ".delegate.name", "name is required") }
        if let rw = route.rewrite {
            if rw.uri != nil && rw.uriRegexRewrite != nil { c.add(p + ".rewrite", "only one of uri or uriRegexRewrite may be set") }
            if let rr = rw.uriRegexRewrite {
                if let m = rr.match { CommonRules.regex(m, p + ".rewrite.uriRegexRewrite.match", &c) }
                else { c.add(p + ".rewrite.uriRegexRewrite.match", "match is required") }
                if rr.rewrite == nil { c.add(p + ".rewrite.uriRegexRewrite.rewrite", "rewrite is required") }
                // A substitution naming a group the pattern lacks is NACKed by Envoy: refused here.
                if let m = rr.match, let rewrite = rr.rewrite, let re = try? RE2Regex(m) {
                    do { try re.checkRewrite(rewrite) } catch {
                        c.add(p + ".rewrite.uriRegexRewrite.rewrite", error.description)
                    }
                }
            }
        }
        if let r = route.retries {
            if let a = r.attempts, a < 0 { c.add(p + ".retries.attempts", "attempts must not be negative") }
            for token in (r.retryOn ?? "").split(separator: ",").map({ $0.trimmed })
            where !retryOnTokens.contains(token) && Int(token) == nil {
                c.add(p + ".retries.retryOn", "unknown retryOn policy \"\(token)\"")
            }
        }
        if let f = route.fault {
            if f.delay == nil && f.abort == nil { c.add(p + ".fault", "one of delay or abort is required") }
            if let d = f.delay {
                if d.fixedDelayMs == nil && d.exponentialDelayMs == nil { c.add(p + ".fault.delay", "fixedDelay is required") }
                if let ms = d.fixedDelayMs, ms < 1 { c.add(p + ".fault.delay.fixedDelay", "must be at least 1ms") }
                CommonRules.percent(d.percentage, p + ".fault.delay.percentage", &c)
            }
            if let a = f.abort {
                if let s = a.httpStatus, !(200...599).contains(s) { c.add(p + ".fault.abort.httpStatus", "status \(s) must be in 200-599") }
                if a.httpStatus == nil && a.grpcStatus == nil && a.http2Error == nil {
                    c.add(p + ".fault.abort", "one of httpStatus, grpcStatus or http2Error is required")
                }
                if let g = a.grpcStatus, AbortGRPCStatus.code(g) == nil {
                    c.add(p + ".fault.abort.grpcStatus", "unknown gRPC status \"\(g)\" (known: \(AbortGRPCStatus.all.joined(separator: ", ")))")
                }
                CommonRules.percent(a.percentage, p + ".fault.abort.percentage", &c)
            }
        }
        if let m = route.mirror, (m.host ?? "").isEmpty { c.add(p + ".mirror.host", "host is required") }
        CommonRules.percent(route.mirrorPercentage, p + ".mirrorPercentage", &c)
        for (j, m) in route.mirrors.enumerated() {
            if (m.destination?.host ?? "").isEmpty { c.add("\(p).mirrors[\(j)].destination.host", "host is required") }
            CommonRules.percent(m.percentage, "\(p).mirrors[\(j)].percentage", &c)
        }
        for (j, o) in (route.corsPolicy?.allowOrigins ?? []).enumerated() {
            CommonRules.stringMatch(o, "\(p).corsPolicy.allowOrigins[\(j)]", &c, allowEmpty: false)
        }
    }

    /// Istio's validateAuthorityRewrite: the authority is set in one place only.
    static func authorityRewriteConflict(_ route: HTTPRoute) -> String? {
        var current = route.rewrite?.authority ?? ""
        for ops in [route.headers?.request?.set ?? [:], route.headers?.request?.add ?? [:]] {
            for (k, v) in ops.sorted(by: { $0.key < $1.key }) where [":authority", "host"].contains(k.lowercased()) {
                if !current.isEmpty {
                    return "authority header cannot be set multiple times: have \"\(current)\", attempting to set \"\(v)\""
                }
                current = v
            }
        }
        return nil
    }

    static func match(_ m: HTTPMatchRequest, _ p: String, _ c: inout Issues) {
        if m.isEmpty { c.add(p, "match block must not be empty") }
        let single: [(String, StringMatch?)] = [("uri", m.uri), ("scheme", m.scheme), ("method", m.method),
                                                 ("authority", m.authority)]
        for (name, sm) in single {
            if let sm {
                CommonRules.stringMatch(sm, "\(p).\(name)", &c, allowEmpty: false)
                if name != "uri", sm.prefix == "" { c.add("\(p).\(name).prefix", "\"\(name)\": prefix string match should not be empty") }
            }
        }
        // With ignoreUriCase the proxies match the uri as a regex: refuse one they would refuse.
        if m.ignoreUriCase == true, let uri = m.uri, uri.kindCount == 1,
           uri.regex.flatMap(CommonRules.regexError) == nil,
           let regex = RouteBuilder.caseInsensitiveRegex(uri), let reason = CommonRules.regexError(regex) {
            c.add(p + ".ignoreUriCase", "uri becomes a case-insensitive regex: \(reason)")
        }
        for (field, map) in [("headers", m.headers), ("withoutHeaders", m.withoutHeaders), ("queryParams", m.queryParams)] {
            for (key, sm) in map.sorted(by: { $0.key < $1.key }) {
                let kp = "\(p).\(field).\(key)"
                if key.isEmpty { c.add(kp, "header name cannot be empty") }
                if field != "queryParams", !key.isEmpty, !isJWTClaim(key), !pseudoHeaders.contains(key), !isHeaderName(key) {
                    c.add(kp, "header name \(key) is not a valid header name")
                }
                CommonRules.stringMatch(sm, kp, &c, allowEmpty: true)
                if sm.prefix == "" { c.add(kp + ".prefix", "\"\(field)\": prefix string match should not be empty") }
            }
        }
        CommonRules.port(m.port, p + ".port", &c)
        for (k, g) in m.gateways.enumerated() { gatewayReference(g, "\(p).gateways[\(k)]", &c) }
    }

    static let pseudoHeaders: Set<String> = [":method", ":scheme", ":authority", ":path", ":status"]

    /// An RFC 7230 token (upper case allowed: header names match case-insensitively).
    static func isHeaderName(_ s: String) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "!#$%&'*+-.^_`|~".unicodeScalars.contains($0) }
    }

    /// Each destination needs a host; weights are non-negative and, with more than one
    /// destination, not all zero (Istio's rule: they need not add up to 100, the proxies
    /// split traffic in proportion).
    static func destinations(_ list: [(Destination?, Int?)], _ p: String, _ c: inout Issues) {
        var total = 0
        for (j, (d, w)) in list.enumerated() {
            let dp = "\(p)[\(j)]"
            if let d {
                if (d.host ?? "").isEmpty { c.add(dp + ".destination.host", "host is required") }
                CommonRules.port(d.port?.number, dp + ".destination.port.number", &c)
            } else {
                c.add(dp + ".destination", "destination is required")
            }
            if let w, w < 0 { c.add(dp + ".weight", "weight \(w) < 0") }
            total += max(0, w ?? 0)
        }
        if list.count > 1 && total == 0 {
            c.add(p, "total destination weight = 0")
        }
    }

    static func headers(_ h: HeadersSpec?, _ p: String, _ c: inout Issues) {
        guard let h else { return }
        for (name, ops) in [("request", h.request), ("response", h.response)] {
            guard let ops else { continue }
            let names = Array(ops.set.keys) + Array(ops.add.keys) + ops.remove
            if names.contains(where: \.isEmpty) { c.add("\(p).\(name)", "header names must not be empty") }
        }
    }
}
