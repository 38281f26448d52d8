import FilterHost
import MeshAPI
import NIOHTTP1
import Transport

/// Envoy's CORS filter: answers preflights (OPTIONS with `origin` and
/// `access-control-request-method`) itself with 200 and the policy's headers, and adds
/// `access-control-allow-origin` (the request's origin), `-allow-credentials` and
/// `-expose-headers` to responses for an allowed origin. A disallowed origin gets no
/// `access-control-allow-origin`; its preflight goes upstream unless the policy says not to
/// forward unmatched preflights. Like Envoy, adds no `vary` header.
final class CorsFilter: HTTPFilter {
    static let originValidKey = "meshd_cors_origin_valid_total"
    static let originInvalidKey = "meshd_cors_origin_invalid_total"

    private enum Decision {
        case none
        /// An allowed origin: the response gets the CORS headers.
        case allowed(origin: String, CorsConfig)
    }

    private let config: CorsConfig?
    private unowned let stream: StreamControl
    private var decision = Decision.none

    init(config: CorsConfig?, stream: StreamControl) {
        self.config = config
        self.stream = stream
    }

    func onRequestHeaders(_ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus {
        // As Envoy: no route, no CORS (the 404 that follows is not a CORS answer).
        guard stream.route(for: head) != nil,
              let policy = stream.perRouteConfig(CorsConfig.name, for: head) as? CorsConfig ?? config,
              let origin = head.headers.first(name: "origin"), !origin.isEmpty else { return .continue }
        let allowed = policy.allows(origin: origin)
        stream.stats?.count(allowed ? Self.originValidKey : Self.originInvalidKey, 1)
        if allowed { decision = .allowed(origin: origin, policy) }

        guard head.method == "OPTIONS",
              let requestedMethod = head.headers.first(name: "access-control-request-method"), !requestedMethod.isEmpty,
              allowed || !policy.forwardNotMatchingPreflights else { return .continue }
        stream.sendLocalReply(status: 200, body: "", headers: Self.preflightHeaders(policy, origin: allowed ? origin : nil, head),
                              flag: nil, from: self)
        return .stop
    }

    func onResponseHeaders(_ head: inout ResponseHead, endStream: Bool) -> FilterHeadersStatus {
        guard case .allowed(let origin, let policy) = decision else { return .continue }
        head.headers.replaceOrAdd(name: "access-control-allow-origin", value: origin)
        if policy.allowCredentials { head.headers.replaceOrAdd(name: "access-control-allow-credentials", value: "true") }
        if let expose = policy.exposeHeaders { head.headers.replaceOrAdd(name: "access-control-expose-headers", value: expose) }
        return .continue
    }

    /// The preflight answer; `*` in methods or headers echoes what the request asks for.
    static func preflightHeaders(_ policy: CorsConfig, origin: String?, _ request: RequestHead) -> HTTPHeaders {
        var h = HTTPHeaders()
        if let origin { h.add(name: "access-control-allow-origin", value: origin) }
        if policy.allowCredentials { h.add(name: "access-control-allow-credentials", value: "true") }
        if let methods = policy.allowMethods {
            let value = methods == "*" ? request.headers.first(name: "access-control-request-method") : methods
            if let value, !value.isEmpty { h.add(name: "access-control-allow-methods", value: value) }
        }
        if let headers = policy.allowHeaders {
            let value = headers == "*" ? request.headers.first(name: "access-control-request-headers") : headers
            if let value, !value.isEmpty { h.add(name: "access-control-allow-headers", value: value) }
        }
        if let maxAge = policy.maxAge { h.add(name: "access-control-max-age", value: maxAge) }
        return h
    }
}
