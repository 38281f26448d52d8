import MeshAPI

/// An http route's `fault` and `corsPolicy` as per-route configs of the proxy's native
/// `meshd.fault` and `meshd.cors` filters (Istio's translateFault / TranslateCORSPolicy),
/// and those filters placed in the chains of the listeners whose routes use them.
enum RouteFilterBuilder {
    static let cors = "meshd.cors"
    static let fault = "meshd.fault"
    /// Istio's order: CORS first (a preflight is answered before anything else runs), then fault.
    static let chainOrder = [cors, fault]

    static func perFilterConfig(_ http: HTTPRoute, _ ctx: TranslationContext, _ id: String, _ path: String) -> [String: JSONValue]? {
        var out: [String: JSONValue] = [:]
        if let f = http.fault, let config = fault(f, ctx, id, path + ".fault") { out[fault] = config }
        if let c = http.corsPolicy { out[cors] = cors(c) }
        return out.isEmpty ? nil : out
    }

    /// A fixed delay and an HTTP or gRPC abort; what Istio drops (exponentialDelay,
    /// http2Error) is dropped with a warning.
    private static func fault(_ f: HTTPFaultInjection, _ ctx: TranslationContext, _ id: String, _ path: String) -> JSONValue? {
        var out: [String: JSONValue] = [:]
        if let d = f.delay {
            if let ms = d.fixedDelayMs {
                // `percentage` wins; the deprecated integer `percent` applies only without it.
                let percent = d.percentage?.value ?? Double(d.percent ?? 0)
                out["delay"] = .object(["fixedDelayMs": .number(Double(ms)), "percentage": .number(percent)])
            } else {
                ctx.warn(id, path + ".delay.exponentialDelay", "exponential delays are not supported (nor by Istio); delay ignored")
            }
        }
        if let a = f.abort {
            var abort: [String: JSONValue] = ["percentage": .number(a.percentage?.value ?? 0)]
            if let status = a.httpStatus {
                abort["httpStatus"] = .number(Double(status))
            } else if let name = a.grpcStatus, let code = AbortGRPCStatus.code(name) {
                abort["grpcStatus"] = .number(Double(code))
            } else if a.http2Error != nil {
                ctx.warn(id, path + ".abort.http2Error", "http2Error aborts are not supported (nor by Istio); abort ignored")
            }
            if abort.count == 2 { out["abort"] = .object(abort) }
        }
        return out.isEmpty ? nil : .object(out)
    }

    private static func cors(_ c: CorsPolicy) -> JSONValue {
        var out: [String: JSONValue] = [:]
        let origins: [JSONValue] = c.allowOrigins.isEmpty
            ? c.allowOrigin.map { .object(["exact": .string($0)]) }
            : c.allowOrigins.compactMap { m in
                if let e = m.exact { return .object(["exact": .string(e)]) }
                if let p = m.prefix { return .object(["prefix": .string(p)]) }
                if let r = m.regex { return .object(["safeRegex": .string(r)]) }
                return nil
            }
        out["allowOrigins"] = .array(origins)
        func list(_ items: [String]) -> JSONValue { .array(items.map { .string($0) }) }
        if !c.allowMethods.isEmpty { out["allowMethods"] = list(c.allowMethods) }
        if !c.allowHeaders.isEmpty { out["allowHeaders"] = list(c.allowHeaders) }
        if !c.exposeHeaders.isEmpty { out["exposeHeaders"] = list(c.exposeHeaders) }
        // Whole seconds, as Istio writes Envoy's max_age.
        if let ms = c.maxAgeMs { out["maxAgeSeconds"] = .number(Double(ms / 1000)) }
        if let credentials = c.allowCredentials { out["allowCredentials"] = .bool(credentials) }
        // UNSPECIFIED and FORWARD keep Envoy's default (forward); IGNORE answers them here.
        if c.unmatchedPreflights == "IGNORE" { out["forwardNotMatchingPreflights"] = .bool(false) }
        return .object(out)
    }

    /// The native filters a listener serving `config` needs: those its virtual hosts and
    /// routes configure, in chain order; nil when none, so a listener whose routes use
    /// neither pays nothing for them.
    static func filters(for config: RouteConfig?) -> [HTTPFilterConfig]? {
        guard let config else { return nil }
        var names = Set<String>()
        for vhost in config.virtualHosts {
            if let keys = vhost.perFilterConfig?.keys { names.formUnion(keys) }
            for route in vhost.routes {
                if let keys = route.perFilterConfig?.keys { names.formUnion(keys) }
            }
        }
        let used = chainOrder.filter { names.contains($0) }
        return used.isEmpty ? nil : used.map { HTTPFilterConfig(name: $0) }
    }
}

/// gRPC status names as Istio's `grpcStatus` takes them, and their codes.
enum AbortGRPCStatus {
    static let all = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                      "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                      "UNAUTHENTICATED"]

    static func code(_ name: String) -> Int? { all.firstIndex(of: name) }
}
