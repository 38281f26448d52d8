import FilterHost
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import NIOHTTP1
import Transport

/// Verifies the JWTs a request carries (Envoy's jwt_authn with Istio's `allow_missing`
/// requirement): no token → the request continues unauthenticated and authorization
/// decides; a token that fails any check → 401 (403 for a wrong audience) with Envoy's text.
/// A verified token's payload goes to dynamic metadata under its issuer, where the RBAC
/// filter finds `request.auth.*` and `requestPrincipals`.
/// A token whose issuer's keys come from `jwksUri` waits (the headers held) while a stale or
/// missing key set is fetched.
final class JWTFilter: HTTPFilter {
    private enum Fetch {
        case none
        /// Key sets being fetched before the held headers are verified.
        case waiting(RequestHead, [HTTPCallout], remaining: Int)
    }

    private let config: JWTConfig
    private unowned let stream: StreamControl
    private var fetch = Fetch.none

    init(config: JWTConfig, stream: StreamControl) {
        self.config = config
        self.stream = stream
    }

    func onRequestHeaders(_ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus {
        let found = tokens(in: head)
        guard !found.isEmpty else { return .continue }
        let stale = Self.staleRemotes(found)
        guard stale.isEmpty else {
            // Answers come on a later loop tick, never from inside `fetch`.
            let callouts = stale.compactMap { $0.fetch(stream) { [weak self] in self?.fetched() } }
            fetch = .waiting(head, callouts, remaining: stale.count)
            return .stop
        }
        return authenticate(&head, found) ? .continue : .stop
    }

    func onStreamComplete() {
        if case .waiting(_, let callouts, _) = fetch { for c in callouts { c.cancel() } }
        fetch = .none
    }

    private func fetched() {
        guard case .waiting(var head, let callouts, let remaining) = fetch else { return }
        guard remaining <= 1 else {
            fetch = .waiting(head, callouts, remaining: remaining - 1)
            return
        }
        fetch = .none
        if authenticate(&head, tokens(in: head)) { stream.continueRequest(from: self, replacingHead: head) }
    }

    /// The remote key sets the tokens' issuers need fetched first (each once).
    private static func staleRemotes(_ found: [(String, [JWTProvider])]) -> [RemoteJWKS] {
        var out: [RemoteJWKS] = []
        for (token, candidates) in found {
            guard let issuer = (try? JWT(token))?.issuer else { continue }
            for p in candidates where p.issuer == issuer {
                if let remote = p.remote, remote.needsFetch, !out.contains(where: { $0 === remote }) { out.append(remote) }
            }
        }
        return out
    }

    /// Verifies every token; false when a failure was answered.
    private func authenticate(_ head: inout RequestHead, _ found: [(String, [JWTProvider])]) -> Bool {
        for (token, candidates) in found {
            switch verify(token, candidates) {
            case .failure(let failure):
                stream.stats?.count("meshd_jwt_authn_denied_total", 1)
                var headers = HTTPHeaders()
                let path = head.path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "/"
                headers.add(name: "www-authenticate",
                            value: "Bearer realm=\"\(head.scheme)://\(head.authority)\(path)\", error=\"invalid_token\"")
                stream.sendLocalReply(status: failure.status, body: failure.message, headers: headers, flag: nil, from: self)
                return false
            case .success(let (jwt, provider)):
                stream.streamInfo.dynamicMetadata[JWTConfig.metadataNamespace, default: [:]][provider.issuer] = .object(jwt.claims)
                apply(provider, jwt, token, to: &head.headers)
            }
        }
        stream.stats?.count("meshd_jwt_authn_allowed_total", 1)
        return true
    }

    /// Each distinct token with the providers whose locations found it.
    private func tokens(in head: RequestHead) -> [(String, [JWTProvider])] {
        var order: [String] = []
        var byToken: [String: [JWTProvider]] = [:]
        for provider in config.providers {
            for location in provider.locations {
                guard let token = Self.extract(location, from: head), !token.isEmpty else { continue }
                if byToken[token] == nil { order.append(token) }
                byToken[token, default: []].append(provider)
            }
        }
        return order.map { ($0, byToken[$0]!) }
    }

    private func verify(_ token: String, _ candidates: [JWTProvider]) -> Result<(JWT, JWTProvider), JWTFailure> {
        let jwt: JWT
        do { jwt = try JWT(token) } catch { return .failure(error) }
        let providers = candidates.filter { $0.issuer == jwt.issuer }
        guard !providers.isEmpty else { return .failure(.unknownIssuer) }
        let now = Date().timeIntervalSince1970
        var last = JWTFailure.verificationFails
        for provider in providers {
            do {
                try jwt.verify(with: provider, now: now)
                return .success((jwt, provider))
            } catch { last = error }
        }
        return .failure(last)
    }

    /// `forwardOriginalToken` (default false: the token's header is removed, as Envoy does;
    /// query parameters and cookies stay), `outputPayloadToHeader` (the payload, base64url),
    /// `outputClaimToHeaders` (a claim's value; nested claims by `a.b`).
    private func apply(_ provider: JWTProvider, _ jwt: JWT, _ token: String, to headers: inout HTTPHeaders) {
        if !provider.forwardOriginalToken {
            for case .header(let name, let prefix) in provider.locations
            where headers[name].contains(where: { Self.strip(prefix, from: $0) == token }) {
                headers.remove(name: name)
            }
        }
        if let header = provider.outputPayloadToHeader {
            let payload = token.split(separator: ".", omittingEmptySubsequences: false)[1]
            headers.replaceOrAdd(name: header, value: String(payload))
        }
        for (header, claim) in provider.outputClaimToHeaders {
            guard let value = Self.claimText(jwt.claims, claim) else { continue }
            headers.replaceOrAdd(name: header, value: value)
        }
    }

    static func claimText(_ claims: [String: JSONValue], _ path: String) -> String? {
        var value: JSONValue = .object(claims)
        for part in path.split(separator: ".") {
            guard let next = value[String(part)] else { return nil }
            value = next
        }
        switch value {
        case .string(let s): return s
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : String(n)
        default: return nil
        }
    }

    static func extract(_ location: TokenLocation, from head: RequestHead) -> String? {
        switch location {
        case .header(let name, let prefix):
            for value in head.headers[name] { if let t = strip(prefix, from: value) { return t } }
            return nil
        case .param(let name):
            guard let q = head.path.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
            for pair in q.split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                if kv[0] == name, kv.count == 2 { return kv[1].percentDecoded ?? String(kv[1]) }
            }
            return nil
        case .cookie(let name):
            for header in head.headers["cookie"] {
                for c in header.split(separator: ";") {
                    let kv = c.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    if kv[0].trimmed == name, kv.count == 2 {
                        return kv[1].trimmed
                    }
                }
            }
            return nil
        }
    }

    /// The value after `prefix` (compared without case, as `Bearer ` is), trimmed; nil when it does not start so.
    private static func strip(_ prefix: String, from value: String) -> String? {
        guard value.count >= prefix.count, value.prefix(prefix.count).lowercased() == prefix.lowercased() else { return nil }
        return value.dropFirst(prefix.count).trimmed
    }
}
