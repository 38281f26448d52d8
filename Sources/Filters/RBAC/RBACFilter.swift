import FilterHost
import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// Enforces AuthorizationPolicies on the request headers, in Istio's order: a matching
/// CUSTOM policy asks its external authorizer, whose denial ends the request; then a matching
/// DENY policy denies; then, when any ALLOW policy applies, one must match. AUDIT policies
/// never deny: a match sets Envoy's `access_log_hint`. A request denied by policy gets 403
/// `RBAC: access denied` and the `RBAC` response flag, as from Envoy's RBAC filter; one the
/// authorizer denies gets its answer and the `UAEX` flag, as from Envoy's ext_authz filter.
/// A Lua authorizer runs right here (LuaAuthzCheck), its request callbacks fed from this
/// filter's own.
final class RBACFilter: HTTPFilter {
    private enum Check {
        case none
        /// Waiting for the authorizer; the request headers are held.
        /// Collecting the body for the check (`includeRequestBodyInCheck`); the headers are held
        /// and the body queues behind them.
        case collecting(BodyCheck)
        case pending(HTTPCallout, ExtAuthzProvider, RequestHead)
        /// A Lua authorizer decides (and, once it has, may still read the body).
        case lua(LuaAuthzCheck)
        /// Allowed: these of the authorizer's headers go on the response.
        case allowed(HTTPHeaders)
    }

    private let config: RBACConfig
    private unowned let stream: StreamControl
    private var check = Check.none

    init(config: RBACConfig, stream: StreamControl) {
        self.config = config
        self.stream = stream
    }

    func onRequestHeaders(_ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus {
        if !config.dryRun.isEmpty { recordDryRun(request(head)) }
        switch Self.decide(config.policies, request(head)) {
        case .check(let policy):
            switch policy.provider.flatMap({ config.providers[$0] }) {
            case .http(let provider)?:
                guard let upstream = stream.upstream, let cluster = stream.snapshot.clusters[provider.cluster] else {
                    return deny(policy.name)
                }
                guard provider.body != nil, !endStream else {
                    startCheck(provider, cluster: cluster, upstream: upstream, head: head, body: nil)
                    return .stop
                }
                let limit = min(provider.body?.maxBytes ?? stream.bufferLimit, stream.bufferLimit)
                check = .collecting(BodyCheck(provider: provider, cluster: cluster, upstream: upstream, head: head, limit: limit))
                return .stopIteration
            case .lua(let provider)?:
                return startLuaCheck(provider, &head, endStream: endStream)
            case nil:
                return deny(policy.name)
            }
        case .allow(let audited):
            return allow(audited: audited)
        case .deny(let policy):
            return deny(policy)
        }
    }

    func onRequestData(_ data: inout ByteBuffer, endStream: Bool) -> FilterDataStatus {
        switch check {
        case .lua(let lua):
            return lua.filter.onRequestData(&data, endStream: endStream)
        case .collecting(var body):
            switch body.add(data, end: endStream) {
            case .collecting:
                check = .collecting(body)
            case .complete(let partial):
                startCheck(body.provider, cluster: body.cluster, upstream: body.upstream, head: body.head,
                           body: (body.collected, partial))
            case .tooLarge:
                check = .none
                stream.sendLocalReply(status: 413, body: "Payload Too Large", headers: HTTPHeaders(), flag: nil, from: self)
                return .stop
            }
            return .continue  // queued behind the held headers until the check allows
        default:
            return .continue
        }
    }

    func onRequestTrailers(_ trailers: inout HTTPHeaders) -> FilterHeadersStatus {
        switch check {
        case .lua(let lua):
            return lua.filter.onRequestTrailers(&trailers)
        case .collecting(let body):
            startCheck(body.provider, cluster: body.cluster, upstream: body.upstream, head: body.head,
                       body: (body.collected, false))
            return .continue
        default:
            return .continue
        }
    }

    func onResponseHeaders(_ head: inout ResponseHead, endStream: Bool) -> FilterHeadersStatus {
        if case .allowed(let headers) = check {
            for (name, value) in headers { head.headers.add(name: name, value: value) }
        }
        return .continue
    }

    func onStreamComplete() {
        switch check {
        case .pending(let callout, _, _): callout.cancel()
        case .lua(let lua): lua.filter.onStreamComplete()
        case .none, .allowed, .collecting: break
        }
        check = .none
    }

    private func request(_ head: RequestHead) -> RBACRequest {
        RBACRequest(head: head, connection: stream.connectionInfo,
                    metadata: stream.streamInfo.dynamicMetadata[JWTConfig.metadataNamespace],
                    destinationPort: config.destinationPort, remoteFromForwardedFor: config.remoteFromForwardedFor)
    }

    private func allow(audited: Bool) -> FilterHeadersStatus {
        if audited { stream.streamInfo.dynamicMetadata["envoy.common", default: [:]]["access_log_hint"] = .bool(true) }
        stream.stats?.count("meshd_rbac_allowed_total", 1)
        return .continue
    }

    private func deny(_ policy: String?) -> FilterHeadersStatus {
        stream.stats?.count("meshd_rbac_denied_total", 1)
        if let policy {
            stream.streamInfo.dynamicMetadata["envoy.filters.http.rbac", default: [:]]["enforced_effective_policy_id"] = .string(policy)
        }
        stream.sendLocalReply(status: 403, body: "RBAC: access denied", headers: HTTPHeaders(),
                              flag: .rbacAccessDenied, from: self)
        return .stop
    }

    /// Istio's dry-run: the shadow engines' results in the RBAC filter's metadata, as Envoy's
    /// shadow rules with Istio's prefixes (`istio_dry_run_allow_` for the ALLOW policies,
    /// `istio_dry_run_deny_` for the DENY ones), and counted; the request is not affected.
    private func recordDryRun(_ request: RBACRequest) {
        for result in Self.dryRun(config.dryRun, request) {
            let prefix = result.action == .allow ? "istio_dry_run_allow_" : "istio_dry_run_deny_"
            var metadata = stream.streamInfo.dynamicMetadata["envoy.filters.http.rbac", default: [:]]
            metadata[prefix + "shadow_engine_result"] = .string(result.allowed ? "allowed" : "denied")
            if let matched = result.matched { metadata[prefix + "shadow_effective_policy_id"] = .string(matched) }
            stream.streamInfo.dynamicMetadata["envoy.filters.http.rbac"] = metadata
            stream.stats?.count(result.stat, 1)
        }
    }

    struct DryRunResult {
        let action: RBACPolicy.Action
        /// The first matching policy's name.
        let matched: String?
        var allowed: Bool { (action == .allow) == (matched != nil) }
        var stat: String { "meshd_rbac_dry_run_total{action=\"\(action.rawValue)\",result=\"\(allowed ? "allowed" : "denied")\"}" }
    }

    /// The shadow engines' answers: one for the ALLOW dry-run policies, one for the DENY ones.
    static func dryRun(_ policies: [RBACPolicy], _ request: RBACRequest) -> [DryRunResult] {
        [RBACPolicy.Action.allow, .deny].compactMap { action in
            let these = policies.filter { $0.action == action }
            guard !these.isEmpty else { return nil }
            return DryRunResult(action: action, matched: these.first { $0.matches(request) }?.name)
        }
    }

    // MARK: external authorization

    /// `body`: what of the request's body the check carries, and whether it is cut short.
    private func startCheck(_ provider: ExtAuthzProvider, cluster: Cluster, upstream: UpstreamClient, head: RequestHead,
                            body: (ByteBuffer, partial: Bool)?) {
        let callout = HTTPCallout(eventLoop: stream.eventLoop, timers: stream.timers, bodyLimit: stream.bufferLimit) { [weak self] result in
            self?.checked(result)
        }
        check = .pending(callout, provider, head)
        let request = provider.checkRequest(for: head, bodyBytes: body?.0.readableBytes ?? 0, partial: body?.partial ?? false)
        callout.start(cluster: cluster, request: request, body: body?.0, timeoutMs: provider.timeoutMs, upstream: upstream)
    }

    private func checked(_ result: Result<(ResponseHead, ByteBuffer), HTTPCallout.Failure>) {
        guard case .pending(_, let provider, var head) = check else { return }
        check = .none
        switch result {
        case .success(let (answer, _)) where answer.status == 200:  // Envoy allows on 200 only
            stream.stats?.count("meshd_ext_authz_total{result=\"ok\"}", 1)
            for (name, value) in ExtAuthzProvider.headers(answer.headers, provider.upstreamOnAllow) {
                head.headers.replaceOrAdd(name: name, value: value)
            }
            check = .allowed(ExtAuthzProvider.headers(answer.headers, provider.downstreamOnAllow))
            resume(head)
        case .success(let (answer, body)):
            stream.stats?.count("meshd_ext_authz_total{result=\"denied\"}", 1)
            stream.sendLocalReply(status: answer.status, body: String(buffer: body), headers: provider.denyHeaders(answer.headers),
                                  flag: .unauthorizedExternalService, from: self)
        case .failure where provider.failOpen:
            stream.stats?.count("meshd_ext_authz_total{result=\"failure_mode_allowed\"}", 1)
            resume(head)
        case .failure:
            stream.stats?.count("meshd_ext_authz_total{result=\"error\"}", 1)
            stream.sendLocalReply(status: provider.statusOnError, body: "", headers: HTTPHeaders(),
                                  flag: .unauthorizedExternalService, from: self)
        }
    }

    /// The authorizer let the request through: the DENY and ALLOW policies have their say.
    private func resume(_ head: RequestHead, data: ByteBuffer? = nil) {
        switch Self.decide(config.policies, request(head), afterCustom: true) {
        case .allow(let audited):
            _ = allow(audited: audited)
            stream.continueRequest(from: self, replacingHead: head, replacingData: data)
        case .deny(let policy):
            _ = deny(policy)
        case .check:
            break  // afterCustom never asks again
        }
    }

    // MARK: Lua authorization

    /// Runs the Lua authorizer's `envoy_on_request` on the request headers. It may decide at
    /// once (returning, replying or failing) or later (waiting for the body or an httpCall,
    /// with the headers held: its status is this filter's).
    private func startLuaCheck(_ provider: LuaAuthorizer, _ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus {
        let lua = LuaAuthzCheck(provider, head: head, stream: stream, owner: self)
        check = .lua(lua)
        let status = lua.filter.onRequestHeaders(&head, endStream: endStream)
        guard status == .continue, let passed = lua.settle(head) else { return status }
        countPassed(failedOpen: passed.failedOpen)
        head = passed.head
        switch Self.decide(config.policies, request(head), afterCustom: true) {
        case .allow(let audited): return allow(audited: audited)
        case .deny(let policy): return deny(policy)
        case .check: return .continue  // afterCustom never asks again
        }
    }

    private func countPassed(failedOpen: Bool) {
        stream.stats?.count("meshd_ext_authz_total{result=\"\(failedOpen ? "failure_mode_allowed" : "ok")\"}", 1)
    }

    /// The plugin let the held headers go (with its edits, and the body it read, if any).
    func luaCheckPassed(_ head: RequestHead, data: ByteBuffer?, failedOpen: Bool) {
        countPassed(failedOpen: failedOpen)
        resume(head, data: data)
    }

    /// The plugin answered the request (`respond()`): its status, headers and body go to the client.
    func luaCheckDenied(status: Int, body: String, headers: HTTPHeaders) {
        stream.stats?.count("meshd_ext_authz_total{result=\"denied\"}", 1)
        stream.sendLocalReply(status: status, body: body, headers: headers, flag: .unauthorizedExternalService, from: self)
    }

    /// The plugin failed and the provider fails closed.
    func luaCheckFailed(_ provider: LuaAuthorizer) {
        stream.stats?.count("meshd_ext_authz_total{result=\"error\"}", 1)
        stream.sendLocalReply(status: provider.statusOnError, body: "", headers: HTTPHeaders(),
                              flag: .unauthorizedExternalService, from: self)
    }

    enum Decision {
        /// A CUSTOM policy matched: its authorizer decides first.
        case check(RBACPolicy)
        case allow(audited: Bool)
        /// The policy that denied; nil when no ALLOW policy matched.
        case deny(String?)
    }

    static func decide(_ policies: [RBACPolicy], _ request: RBACRequest, afterCustom: Bool = false) -> Decision {
        if !afterCustom, let custom = policies.first(where: { $0.action == .custom && $0.matches(request) }) {
            return .check(custom)
        }
        if let denying = policies.first(where: { $0.action == .deny && $0.matches(request) }) {
            return .deny(denying.name)
        }
        let allows = policies.filter { $0.action == .allow }
        if !allows.isEmpty && !allows.contains(where: { $0.matches(request) }) { return .deny(nil) }
        return .allow(audited: policies.contains { $0.action == .audit && $0.matches(request) })
    }
}
