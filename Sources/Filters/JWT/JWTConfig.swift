import FilterHost
import MeshAPI

/// `meshd.jwt_authn` (Envoy's jwt_authn as Istio configures it for RequestAuthentication):
/// `{providers: [{issuer, audiences, jwks, fromHeaders: [{name, prefix}], fromParams,
/// fromCookies, forwardOriginalToken, outputPayloadToHeader, outputClaimToHeaders:
/// [{header, claim}], remoteJwks}]}`. `jwks` is the JWKS document as a string;
/// `remoteJwks` (a `RemoteJWKS`) fetches it from the issuer's `jwksUri` instead; with neither
/// no token of the issuer verifies.
struct JWTConfig: Sendable {
    static let name = "meshd.jwt_authn"
    /// Where verified payloads go, keyed by issuer (Envoy's `payload_in_metadata`, as Istio sets it).
    static let metadataNamespace = "envoy.filters.http.jwt_authn"

    let providers: [JWTProvider]

    init(_ config: JSONValue?) throws {
        guard let config, let o = config.objectValue else { throw ConfigError(path: "", reason: "must be a map") }
        for key in o.keys.sorted() where key != "providers" {
            throw ConfigError(path: key, reason: "unknown field (known: providers)")
        }
        providers = try (o["providers"]?.arrayValue ?? []).enumerated().map { i, p in
            do { return try JWTProvider(p) } catch let e as ConfigError {
                throw ConfigError(path: "providers[\(i)]" + (e.path.isEmpty ? "" : "." + e.path), reason: e.reason)
            }
        }
    }
}

/// Where a token may be: a header (its value after `prefix`), a query parameter, a cookie.
enum TokenLocation: Sendable, Hashable {
    case header(name: String, prefix: String)
    case param(String)
    case cookie(String)

    /// Istio's defaults when a rule names no location: `Authorization: Bearer …`, then `?access_token=`.
    static let defaults: [TokenLocation] = [.header(name: "authorization", prefix: "Bearer "), .param("access_token")]
}

/// One jwtRule of a RequestAuthentication.
struct JWTProvider: Sendable {
    let issuer: String
    let audiences: [String]
    let keys: [JWK]
    let remote: RemoteJWKS?
    let locations: [TokenLocation]
    let forwardOriginalToken: Bool
    let outputPayloadToHeader: String?
    let outputClaimToHeaders: [(header: String, claim: String)]

    private static let fields: Set<String> = ["issuer", "audiences", "jwks", "fromHeaders", "fromParams", "fromCookies",
                                              "forwardOriginalToken", "outputPayloadToHeader", "outputClaimToHeaders", "remoteJwks"]

    init(_ v: JSONValue) throws {
        guard let o = v.objectValue else { throw ConfigError(path: "", reason: "must be a map") }
        for key in o.keys.sorted() where !Self.fields.contains(key) {
            throw ConfigError(path: key, reason: "unknown field (known: \(Self.fields.sorted().joined(separator: ", ")))")
        }
        guard let issuer = o["issuer"]?.stringValue, !issuer.isEmpty else {
            throw ConfigError(path: "issuer", reason: "issuer is required")
        }
        self.issuer = issuer
        audiences = try Self.strings(o["audiences"], "audiences")
        // No usable key (neither `jwks` nor `remoteJwks`; or a JWKS with no valid key, which
        // the control plane refuses first): tokens of this issuer fail, as in Envoy.
        // A bad JWKS must not make the whole snapshot refused.
        if let v = o["jwks"] {
            guard let text = v.stringValue else { throw ConfigError(path: "jwks", reason: "must be a string (the JWKS document)") }
            keys = (try? JWKS.parse(text)) ?? []
        } else {
            keys = []
        }
        remote = try o["remoteJwks"].map { try RemoteJWKS($0, at: "remoteJwks") }
        var locations: [TokenLocation] = []
        for (i, h) in (o["fromHeaders"]?.arrayValue ?? []).enumerated() {
            guard let name = h["name"]?.stringValue, !name.isEmpty else {
                throw ConfigError(path: "fromHeaders[\(i)].name", reason: "a header name is required")
            }
            locations.append(.header(name: name.lowercased(), prefix: h["prefix"]?.stringValue ?? ""))
        }
        locations += try Self.strings(o["fromParams"], "fromParams").map(TokenLocation.param)
        locations += try Self.strings(o["fromCookies"], "fromCookies").map(TokenLocation.cookie)
        self.locations = locations.isEmpty ? TokenLocation.defaults : locations
        if case .bool(let b) = o["forwardOriginalToken"] { forwardOriginalToken = b } else { forwardOriginalToken = false }
        outputPayloadToHeader = o["outputPayloadToHeader"]?.stringValue
        outputClaimToHeaders = try (o["outputClaimToHeaders"]?.arrayValue ?? []).enumerated().map { i, c in
            guard let header = c["header"]?.stringValue, let claim = c["claim"]?.stringValue else {
                throw ConfigError(path: "outputClaimToHeaders[\(i)]", reason: "header and claim are required")
            }
            return (header, claim)
        }
    }

    /// The inline keys, else those fetched from `jwksUri` so far.
    var verificationKeys: [JWK] { remote?.keys ?? keys }

    private static func strings(_ v: JSONValue?, _ path: String) throws -> [String] {
        guard let v else { return [] }
        return try (v.arrayValue ?? [.null]).map {
            guard let s = $0.stringValue else { throw ConfigError(path: path, reason: "must be a list of strings") }
            return s
        }
    }
}

struct JWTFactory: HTTPFilterFactory {
    let config: JWTConfig

    static func build(_ config: JSONValue?) throws -> HTTPFilterFactory { JWTFactory(config: try JWTConfig(config)) }

    func makeFilter(stream: StreamControl) -> HTTPFilter { JWTFilter(config: config, stream: stream) }
}
