#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI

/// A RequestAuthentication `jwksUri` as the JWT filter's `remoteJwks`: the proxy fetches it
/// through a cluster (Envoy's `remote_jwks`), so the fetch takes the proxy's own upstream
/// path, TLS stack and timers. A host of the registry is reached through its outbound cluster;
/// another host gets a cluster of its own (its name resolved by the proxy; `https` with TLS
/// to it, verified against the system's roots).
enum RemoteJWKSBuilder {
    static func remote(uri: String, timeoutMs: Int?, _ id: String, _ path: String, _ ctx: TranslationContext) -> JSONValue? {
        guard let url = URL(string: uri), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = url.host, !host.isEmpty else {
            ctx.warn(id, path, "\"\(uri)\" is not an http or https URL; tokens from this issuer are refused")
            return nil
        }
        let port = url.port ?? (scheme == "https" ? 443 : 80)
        let cluster: String
        if ctx.registry.service(host: host)?.port(port) != nil {
            cluster = ctx.cluster(host: host, port: port, subset: nil)
        } else {
            cluster = Naming.outboundCluster(host: host, port: port)
            ctx.extraClusters[cluster] = Cluster(name: cluster, tls: scheme == "https" ? UpstreamTLS(sni: host) : nil,
                                                 endpoints: [Endpoint(address: host, port: port)])
        }
        var requestPath = url.path.isEmpty ? "/" : url.path
        if let query = url.query { requestPath += "?" + query }
        let defaultPort = (scheme == "https" && port == 443) || (scheme == "http" && port == 80)
        var o: [String: JSONValue] = [
            "cluster": .string(cluster), "path": .string(requestPath),
            "authority": .string(defaultPort ? host : "\(host):\(port)"),
        ]
        if let timeoutMs { o["timeoutMs"] = .number(Double(timeoutMs)) }
        if let duration = ctx.store.jwksCacheDurationMs { o["cacheDurationMs"] = .number(Double(duration)) }
        return .object(o)
    }
}
