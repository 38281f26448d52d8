#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI

/// The external authorizers of a proxy's CUSTOM AuthorizationPolicies: each policy names an
/// `extensionProviders` entry of the mesh config, which becomes a `meshd.rbac` provider: an
/// `envoyExtAuthzHttp` one with an outbound cluster for its `service:port`, a `meshdLuaPlugin`
/// one with its LuaPlugin's code. A policy whose provider is missing, of another kind, or names
/// a LuaPlugin that does not exist denies what its rules match, as Istio does when it cannot
/// build the CUSTOM action, and is announced.
enum ExtAuthzBuilder {
    static func providers(for policies: [Config<AuthorizationPolicy>], _ ctx: TranslationContext) -> [String: JSONValue] {
        var out: [String: JSONValue] = [:]
        for ap in policies where ap.spec.action == "CUSTOM" {
            let name = ap.spec.provider?.name ?? ""
            guard out[name] == nil else { continue }
            switch ctx.store.meshConfig.provider(named: name)?.kind {
            case .envoyExtAuthzHttp(let http):
                out[name] = provider(http, ctx)
            case .meshdLuaPlugin(let lua):
                guard let plugin = authorizer(lua, ctx) else {
                    let (ns, plugin) = lua.reference(rootNamespace: ctx.store.meshConfig.rootNamespace)
                    ctx.warn(ap.id, "spec.provider.name", "extension provider \"\(name)\" names LuaPlugin \(ns)/\(plugin), which does not exist or has no code; this CUSTOM policy denies every request its rules match")
                    continue
                }
                ctx.use(plugin.id)
                out[name] = provider(lua, plugin)
            case .some:
                ctx.warn(ap.id, "spec.provider.name", "extension provider \"\(name)\" is not an envoyExtAuthzHttp or meshdLuaPlugin provider; this CUSTOM policy denies every request its rules match")
            case nil:
                ctx.warn(ap.id, "spec.provider.name", "no extension provider \"\(name)\" in the mesh config; this CUSTOM policy denies every request its rules match")
            }
        }
        return out
    }

    /// The LuaPlugin a `meshdLuaPlugin` provider names, when it exists and has code.
    static func authorizer(_ lua: ExtensionProvider.LuaAuthorizer, _ ctx: TranslationContext) -> PluginDefinition? {
        let (namespace, name) = lua.reference(rootNamespace: ctx.store.meshConfig.rootNamespace)
        return PluginDefinition.all(in: ctx.store).first {
            $0.kind == .luaPlugin && $0.namespace == namespace && $0.name == name && $0.code?.isEmpty == false
        }
    }

    /// `{luaPlugin: <meshd.lua filter config>, failOpen, statusOnError}`: the plugin's code,
    /// settings and limits; its own failStrategy gives way to the provider's failOpen.
    private static func provider(_ p: ExtensionProvider.LuaAuthorizer, _ plugin: PluginDefinition) -> JSONValue {
        var code: [String: JSONValue] = [
            "name": .string(Naming.plugin(namespace: plugin.namespace, plugin.name, part: 1)),
            "inlineCode": .string(plugin.code ?? ""),
        ]
        if let c = plugin.pluginConfig { code["pluginConfig"] = c }
        if let m = plugin.modules { code["modules"] = .object(m.mapValues(JSONValue.string)) }
        if let limits = plugin.limits, let data = try? JSONEncoder().encode(limits),
           let json = try? JSONDecoder().decode(JSONValue.self, from: data) {
            code["limits"] = json
        }
        var o: [String: JSONValue] = ["luaPlugin": .object(code), "failOpen": .bool(p.failOpen)]
        if let status = p.statusOnError.flatMap({ Int($0) }) { o["statusOnError"] = .number(Double(status)) }
        return .object(o)
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
        if let body = p.includeRequestBodyInCheck {
            var b: [String: JSONValue] = ["allowPartialMessage": .bool(body.allowPartialMessage), "packAsBytes": .bool(body.packAsBytes)]
            if let max = body.maxRequestBytes, max > 0 { b["maxRequestBytes"] = .number(Double(max)) }
            o["includeRequestBodyInCheck"] = .object(b)
        }
        if !p.includeAdditionalHeadersInCheck.isEmpty {
            o["includeAdditionalHeadersInCheck"] = .object(p.includeAdditionalHeadersInCheck.mapValues(JSONValue.string))
        }
        return .object(o)
    }
}
