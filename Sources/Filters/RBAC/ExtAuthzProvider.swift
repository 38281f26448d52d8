import FilterHost
import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// An external authorizer of CUSTOM policies: Istio's `envoyExtAuthzHttp` provider, which is
/// Envoy's ext_authz HTTP service. `{cluster, timeoutMs, pathPrefix, failOpen, statusOnError,
/// includeRequestHeadersInCheck, includeAdditionalHeadersInCheck, headersToUpstreamOnAllow,
/// headersToDownstreamOnDeny, headersToDownstreamOnAllow, includeRequestBodyInCheck:
/// {maxRequestBytes, allowPartialMessage, packAsBytes}}`; header lists take Istio's
/// patterns (exact, `prefix*`, `*suffix`), matched without case.
struct ExtAuthzProvider: Sendable {
    /// `includeRequestBodyInCheck` (Envoy's `with_request_body`): the body, up to `maxBytes`,
    /// travels in the check. A longer one gets 413 unless `allowPartial`, when its first
    /// `maxBytes` go. (`packAsBytes` is for gRPC checks: an HTTP check carries the bytes as they are.)
    struct BodySettings: Sendable {
        /// nil: the stream's buffer limit.
        let maxBytes: Int?
        let allowPartial: Bool
    }

    let cluster: String
    /// Istio's default: 600s.
    let timeoutMs: Int
    let pathPrefix: String
    let failOpen: Bool
    /// Istio's default: 403.
    let statusOnError: Int
    let requestHeaders: [StringPattern]
    let additionalHeaders: [(String, String)]
    let upstreamOnAllow: [StringPattern]
    let downstreamOnDeny: [StringPattern]
    let downstreamOnAllow: [StringPattern]
    let body: BodySettings?

    static let defaultTimeoutMs = 600_000
    /// Always in the check besides the configured ones (Envoy's defaults for the HTTP service;
    /// the method, path and host travel as the check's own).
    static let defaultRequestHeaders = [StringPattern("authorization")]
    /// Added to a non-empty `headersToDownstreamOnDeny`, as Envoy adds them to `allowed_client_headers`.
    static let denyAlways = ["www-authenticate", "location"].map { StringPattern($0) }
    /// Never copied from the authorizer's answer: they describe its own message.
    static let framing: Set<String> = ["content-length", "transfer-encoding", "connection", "keep-alive", "host",
                                       "upgrade", "proxy-connection", "te", "trailer"]

    static let knownKeys: Set<String> = [
        "cluster", "timeoutMs", "pathPrefix", "failOpen", "statusOnError", "includeRequestHeadersInCheck",
        "includeAdditionalHeadersInCheck", "headersToUpstreamOnAllow", "headersToDownstreamOnDeny", "headersToDownstreamOnAllow",
        "includeRequestBodyInCheck",
    ]
    /// Envoy's header on a check that carries the body: whether it is cut short.
    static let partialBodyHeader = "x-envoy-auth-partial-body"

    init(_ v: JSONValue, at path: String) throws {
        guard let o = v.objectValue else { throw ConfigError(path: path, reason: "must be a map") }
        for key in o.keys.sorted() where !Self.knownKeys.contains(key) {
            throw ConfigError(path: "\(path).\(key)", reason: "unknown field (known: \(Self.knownKeys.sorted().joined(separator: ", ")))")
        }
        guard let cluster = o["cluster"]?.stringValue, !cluster.isEmpty else {
            throw ConfigError(path: path + ".cluster", reason: "required")
        }
        self.cluster = cluster
        if case .number(let n) = o["timeoutMs"] { timeoutMs = Int(n) } else { timeoutMs = Self.defaultTimeoutMs }
        pathPrefix = o["pathPrefix"]?.stringValue ?? ""
        (failOpen, statusOnError) = try Self.failure(o, at: path)
        func patterns(_ key: String) -> [StringPattern] {
            (o[key]?.arrayValue ?? []).compactMap(\.stringValue).map { StringPattern($0, ignoreCase: true) }
        }
        requestHeaders = patterns("includeRequestHeadersInCheck")
        additionalHeaders = (o["includeAdditionalHeadersInCheck"]?.objectValue ?? [:]).sorted { $0.key < $1.key }
            .compactMap { k, v in v.stringValue.map { (k.lowercased(), $0) } }
        upstreamOnAllow = patterns("headersToUpstreamOnAllow")
        downstreamOnDeny = patterns("headersToDownstreamOnDeny")
        downstreamOnAllow = patterns("headersToDownstreamOnAllow")
        if let b = o["includeRequestBodyInCheck"] {
            guard b.objectValue != nil else { throw ConfigError(path: path + ".includeRequestBodyInCheck", reason: "must be a map") }
            var max: Int?
            if case .number(let n) = b["maxRequestBytes"] {
                guard n >= 1 else { throw ConfigError(path: path + ".includeRequestBodyInCheck.maxRequestBytes", reason: "must be positive") }
                max = Int(n)
            }
            body = BodySettings(maxBytes: max, allowPartial: b["allowPartialMessage"] == .bool(true))
        } else {
            body = nil
        }
    }

    /// What an authorizer's failure does, as every provider has it: `failOpen` (default false)
    /// and `statusOnError` (Istio's default: 403).
    static func failure(_ o: [String: JSONValue], at path: String) throws -> (failOpen: Bool, statusOnError: Int) {
        var failOpen = false
        if case .bool(let b) = o["failOpen"] { failOpen = b }
        guard case .number(let n) = o["statusOnError"] else { return (failOpen, 403) }
        guard (100...599).contains(Int(n)) else { throw ConfigError(path: path + ".statusOnError", reason: "not an HTTP status") }
        return (failOpen, Int(n))
    }

    /// The check request: the original method, `pathPrefix` + path and authority, the allowed
    /// headers and the additional ones (which override), and no body (`content-length: 0`) or,
    /// with `includeRequestBodyInCheck`, the body's `content-length` and whether it is `partial`.
    func checkRequest(for head: RequestHead, bodyBytes: Int = 0, partial: Bool = false) -> RequestHead {
        var check = RequestHead(method: head.method, scheme: "http", authority: head.authority,
                                path: pathPrefix + head.path, headers: [:], version: .http11)
        for (name, value) in head.headers {
            let key = name.lowercased()
            guard key != "content-length", key != "host", Self.matches(Self.defaultRequestHeaders + requestHeaders, key) else { continue }
            check.headers.add(name: key, value: value)
        }
        for (name, value) in additionalHeaders { check.headers.replaceOrAdd(name: name, value: value) }
        check.headers.replaceOrAdd(name: "content-length", value: String(bodyBytes))
        if body != nil { check.headers.replaceOrAdd(name: Self.partialBodyHeader, value: partial ? "true" : "false") }
        return check
    }

    /// The authorizer's headers named by `patterns` (every one but framing when `patterns` is
    /// nil).
    static func headers(_ answer: HTTPHeaders, _ patterns: [StringPattern]?) -> HTTPHeaders {
        var out = HTTPHeaders()
        for (name, value) in answer {
            let key = name.lowercased()
            guard !framing.contains(key), patterns.map({ matches($0, key) }) ?? true else { continue }
            out.add(name: key, value: value)
        }
        return out
    }

    /// What goes back to the client with a denial: `headersToDownstreamOnDeny` (with Envoy's
    /// additions), or, when it is empty, every header of the authorizer's answer.
    func denyHeaders(_ answer: HTTPHeaders) -> HTTPHeaders {
        Self.headers(answer, downstreamOnDeny.isEmpty ? nil : downstreamOnDeny + Self.denyAlways)
    }

    private static func matches(_ patterns: [StringPattern], _ name: String) -> Bool {
        patterns.contains { $0.matches(name) }
    }
}

/// The request body an HTTP check is waiting for (`includeRequestBodyInCheck`), up to `limit`.
struct BodyCheck {
    enum Step {
        case collecting
        /// The check can go: the whole body, or (`partial`) its first `limit` bytes.
        case complete(partial: Bool)
        /// Longer than `limit` without `allowPartialMessage`: Envoy's 413.
        case tooLarge
    }

    let provider: ExtAuthzProvider
    let cluster: Cluster
    let upstream: UpstreamClient
    let head: RequestHead
    let limit: Int
    private(set) var collected = ByteBuffer()

    init(provider: ExtAuthzProvider, cluster: Cluster, upstream: UpstreamClient, head: RequestHead, limit: Int) {
        self.provider = provider
        self.cluster = cluster
        self.upstream = upstream
        self.head = head
        self.limit = limit
    }

    mutating func add(_ chunk: ByteBuffer, end: Bool) -> Step {
        let room = limit - collected.readableBytes
        guard chunk.readableBytes <= room else {
            guard provider.body?.allowPartial == true else { return .tooLarge }
            var part = chunk
            if let head = part.readSlice(length: room) { collected.writeImmutableBuffer(head) }
            return .complete(partial: true)
        }
        collected.writeImmutableBuffer(chunk)
        return end ? .complete(partial: false) : .collecting
    }
}
