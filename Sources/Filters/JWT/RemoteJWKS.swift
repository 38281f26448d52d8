import FilterHost
import MeshAPI
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Transport

/// A provider's `jwksUri` as Envoy's `remote_jwks`: fetched through a cluster when a token of
/// the issuer needs it and the cached set is missing or older than `cacheDurationMs` (Envoy's
/// default 5 min), each fetch bounded by `timeoutMs` (Istio's `timeout`, default 5s).
/// `{cluster, authority, path, timeoutMs, cacheDurationMs}`. Shared by every event loop of a
/// snapshot. While no fresh set is cached (the fetch failed or timed out) the issuer's tokens
/// fail with 401 `Jwks remote fetch is failed`, as in Envoy; requests without a token are
/// not affected.
final class RemoteJWKS: Sendable {
    let cluster: String
    let authority: String
    let path: String
    let timeoutMs: Int
    let cacheDurationMs: Int

    private struct Cached: Sendable {
        var keys: [JWK]
        var fetched: NIODeadline
    }

    private let cached = NIOLockedValueBox<Cached?>(nil)

    static let defaultTimeoutMs = 5_000
    static let defaultCacheDurationMs = 300_000

    init(_ v: JSONValue, at path: String) throws {
        guard let o = v.objectValue else { throw ConfigError(path: path, reason: "must be a map") }
        guard let cluster = o["cluster"]?.stringValue, let authority = o["authority"]?.stringValue,
              let uriPath = o["path"]?.stringValue else {
            throw ConfigError(path: path, reason: "cluster, authority and path are required")
        }
        self.cluster = cluster
        self.authority = authority
        self.path = uriPath
        if case .number(let n) = o["timeoutMs"] { timeoutMs = Int(n) } else { timeoutMs = Self.defaultTimeoutMs }
        if case .number(let n) = o["cacheDurationMs"] { cacheDurationMs = Int(n) } else { cacheDurationMs = Self.defaultCacheDurationMs }
    }

    /// The cached keys while fresh; none before the first good fetch or once expired.
    var keys: [JWK] { cached.withLockedValue { c in c.flatMap { isFresh($0) ? $0.keys : nil } ?? [] } }

    /// Whether a token of this issuer should wait for a fetch first.
    var needsFetch: Bool { cached.withLockedValue { c in c.map { !isFresh($0) } ?? true } }

    private func isFresh(_ c: Cached) -> Bool {
        NIODeadline.now() - c.fetched < .milliseconds(Int64(cacheDurationMs))
    }

    /// Fetches the set and caches it when the answer is a 200 with a usable JWKS; `done` runs
    /// on the stream's loop either way.
    func fetch(_ stream: StreamControl, _ done: @escaping () -> Void) -> HTTPCallout? {
        guard let upstream = stream.upstream, let cluster = stream.snapshot.clusters[cluster] else {
            stream.eventLoop.assumeIsolated().execute(done)
            return nil
        }
        let callout = HTTPCallout(eventLoop: stream.eventLoop, timers: stream.timers, bodyLimit: stream.bufferLimit) { [self] result in
            if case .success(let (head, body)) = result, head.status == 200,
               let keys = try? JWKS.parse(String(buffer: body)), !keys.isEmpty {
                cached.withLockedValue { $0 = Cached(keys: keys, fetched: .now()) }
            }
            done()
        }
        let request = RequestHead(method: "GET", scheme: "http", authority: authority, path: path, headers: [:], version: .http11)
        callout.start(cluster: cluster, request: request, body: nil, timeoutMs: timeoutMs, upstream: upstream)
        return callout
    }
}
