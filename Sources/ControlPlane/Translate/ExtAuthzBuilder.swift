import MeshAPI

/// The external authorizers of a proxy's CUSTOM AuthorizationPolicies: each policy names an
/// `extensionProviders` entry of the mesh config, which becomes a `meshd.rbac` provider with
/// an outbound cluster for its `service:port`. A policy whose provider is missing or not an
/// `envoyExtAuthzHttp` one denies what its rules match, as Istio does when it cannot build
/// the CUSTOM action, and is announced.
enum ExtAuthzBuilder {
    static func providers(for policies: [Config<AuthorizationPolicy>], _ ctx: TranslationContext) -> [String: JSONValue] {
        var out: [String: JSONValue] = [:]
        for ap in policies where ap.spec.action == "CUSTOM" {
            let name = ap.spec.provider?.name ?? ""
            guard out[name] == nil else { continue }
            switch ctx.store.meshConfig.provider(named: name)?.kind {
            case .envoyExtAuthzHttp(let http):
                out[name] = provider(http, ctx)
            case .some:
                ctx.warn(ap.id, "spec.provider.name", "extension provider \"\(name)\" is not an envoyExtAuthzHttp provider; this CUSTOM policy denies every request its rules match")
            case nil:
                ctx.warn(ap.id, "spec.provider.name", "no extension provider \"\(name)\" in the mesh config; this CUSTOM policy denies every request its rules match")
            }
        }
        return out
    }

    private static func provider(_ p: ExtensionProvider.ExtAuthzHTTP, _ ctx: TranslationContext) -> JSONValue {
        // `[<Namespace>/]<Hostname>`: the namespace only disambiguates; meshd's hosts are unique.
        let host = p.service.split(separator: "/", maxSplits: 1).last.map(String.init) ?? p.service
        var o: [String: JSONValue] = [
            "cluster": .string(ctx.cluster(host: host, port: p.port, subset: nil)),
            "failOpen": .bool(p.failOpen),
        ]
        if let t = p.timeoutMs { o["timeoutMs"] = .number(Double(t)) }
        if let prefix = p.pathPrefix { o["pathPrefix"] = .string(prefix) }
        if let status = p.statusOnError.flatMap({ Int($0) }) { o["statusOnError"] = .number(Double(status)) }
        func list(_ key: String, _ values: [String]) {
            if !values.isEmpty { o[key] = .array(values.map(JSONValue.string)) }
        }
        list("includeRequestHeadersInCheck", p.includeRequestHeadersInCheck)
        list("headersToUpstreamOnAllow", p.headersToUpstreamOnAllow)
        list("headersToDownstreamOnDeny", p.headersToDownstreamOnDeny)
        list("headersToDownstreamOnAllow", p.headersToDownstreamOnAllow)
        if !p.includeAdditionalHeadersInCheck.isEmpty {
            o["includeAdditionalHeadersInCheck"] = .object(p.includeAdditionalHeadersInCheck.mapValues(JSONValue.string))
        }
        return .object(o)
    }
}
