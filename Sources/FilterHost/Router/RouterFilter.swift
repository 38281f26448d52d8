import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// The terminal filter: picks the cluster for the selected route, runs the request
/// upstream as an `UpstreamAttempt` (connect, send, relay) and feeds the response back
/// through the stream. It owns the route timeout; an attempt owns one try. A route's retry
/// policy replaces a failed attempt by another (backoff, per-try timeout, the cluster's
/// retry budget) as long as nothing of the response went downstream and the request can be
/// replayed; its mirror policies send copies of the whole request. It lives beside the
/// upstream pools it drives, and sees its stream only through `StreamControl`.
final class RouterFilter: HTTPFilter, UpstreamAttemptOwner, TimerTarget {
    /// Where the router stands with the upstream side.
    private enum Phase {
        /// Before the request headers.
        case idle
        /// One attempt runs (connecting, sent, or relaying its response).
        case attempting(UpstreamAttempt)
        /// An attempt failed and a retry waits for its backoff.
        case backingOff
        /// The stream is over for the router: nothing more is relayed.
        case done
    }

    private unowned let stream: StreamControl
    private let client: UpstreamClient
    private let stats: LoopStats
    private let timers: LoopTimers
    private var phase = Phase.idle
    private var cluster: Cluster?
    /// The request's key for a consistent-hash cluster.
    private var requestHash: RequestHash?
    /// The head as sent upstream (after rewrites), for retries and mirrors.
    private var upstreamHead: RequestHead?
    /// The client sent the whole request.
    private var requestComplete = false
    /// Kept while a retry or a mirror may need the request again.
    private var replay: RequestReplay?
    private var retry: RetryState?
    /// The cluster whose retry budget this stream holds one of, while it does.
    private var heldRetryBudget: String?
    private var triedHosts: Set<String> = []
    /// With a retry policy's previous_priorities: the priorities tried, and those left out.
    private var previousPriorities: PreviousPriorities?
    private var mirrors: [Cluster] = []
    /// Attempts made (connected or not), and those whose head went out.
    private var attemptsMade = 0
    private var attemptsStarted = 0
    private var sendsAttemptCount = false
    private var timeout: LoopTimers.Token?
    private var perTryTimeout: LoopTimers.Token?
    private var backoff: LoopTimers.Token?
    private var sentAt: NIODeadline?
    /// The route timeout, armed once the request goes out (0: none).
    private var timeoutMs = 0
    private var responseHeaders: HeaderMutation?

    init(stream: StreamControl, client: UpstreamClient, timers: LoopTimers, stats: LoopStats) {
        self.stream = stream
        self.client = client
        self.timers = timers
        self.stats = stats
    }

    private var isDone: Bool {
        if case .done = phase { return true }
        return false
    }

    private var currentAttempt: UpstreamAttempt? {
        if case .attempting(let a) = phase { return a }
        return nil
    }

    func onRequestHeaders(_ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus {
        // The headers as the filters before left them: a filter that changed them and
        // cleared the route cache gets a route chosen from its edits.
        guard let selected = stream.route(for: head) else {
            stream.sendLocalReply(status: 404, body: "", headers: [:], flag: .noRouteFound, from: self)
            return .stop
        }
        let route = selected.route
        if let direct = route.directResponse {
            stream.sendLocalReply(status: direct.status, body: direct.body ?? "", headers: route.localReplyHeaders(),
                                  flag: nil, from: self)
            return .stop
        }
        if let redirect = route.redirect {
            var headers = route.localReplyHeaders()
            headers.replaceOrAdd(name: "location", value: redirect.location(for: head))
            stream.sendLocalReply(status: redirect.responseCode ?? 301, body: "", headers: headers, flag: nil, from: self)
            return .stop
        }
        guard let action = route.route, let clusterName = Self.pickCluster(action),
              var cluster = stream.snapshot.clusters[clusterName] else {
            stream.sendLocalReply(status: 503, body: "cluster not found", headers: [:], flag: .noClusterFound, from: self)
            return .stop
        }
        if cluster.originalDestination == true {
            guard let endpoint = Self.originalDestination(head.authority) else {
                stream.sendLocalReply(status: 503, body: "no healthy upstream", headers: [:], flag: .noHealthyUpstream, from: self)
                return .stop
            }
            cluster.endpoints = [endpoint]
        }
        stream.streamInfo.clusterName = cluster.name
        let hashConfig = cluster.lbPolicy == .ringHash || cluster.lbPolicy == .maglev ? cluster.consistentHash : nil
        self.cluster = cluster  // its last use: moved, not copied with a retain of each field
        Self.rewrite(&head, action: action, matchedPrefix: route.match.prefix, regex: selected.compiled.rewriteRegex)
        route.headers?.request?.apply(to: &head.headers)
        responseHeaders = route.headers?.response
        timeoutMs = action.timeoutMs ?? 15_000
        upstreamHead = head
        requestComplete = endStream
        if let policy = selected.compiled.retryPolicy {
            retry = RetryState(policy: policy)
            previousPriorities = policy.previousPrioritiesUpdateFrequency.map(PreviousPriorities.init)
        }
        sendsAttemptCount = selected.compiled.sendsAttemptCount
        mirrors = Self.pickMirrors(action, snapshot: stream.snapshot)
        if retry != nil || !mirrors.isEmpty { replay = RequestReplay(limit: stream.bufferLimit) }
        if let config = hashConfig {
            let connection = stream.connectionInfo
            let address = connection.remoteAddress.map { "\(connection.remoteIP ?? ""):\($0.port ?? 0)" }
            requestHash = RequestHash(config, head: head, remoteAddress: address, remoteIP: connection.remoteIP)
        }
        if endStream { sendMirrors() }
        startAttempt()
        return .stop
    }

    func onRequestData(_ data: inout ByteBuffer, endStream: Bool) -> FilterDataStatus {
        guard !isDone else { return .continue }
        if endStream { requestComplete = true }
        let upstream = currentAttempt?.request
        if replay?.append(data, inFlight: upstream != nil) == true { replayAbandoned() }
        if let upstream {
            upstream.sendData(data, endStream: endStream)
            if !upstream.isWritable { stream.setRequestReadingPaused(true) }
            if endStream { armPerTryTimeout() }
        }
        if endStream { sendMirrors() }
        return .continue
    }

    func onRequestTrailers(_ trailers: inout HTTPHeaders) -> FilterHeadersStatus {
        guard !isDone else { return .continue }
        requestComplete = true
        replay?.setTrailers(trailers)
        if let upstream = currentAttempt?.request {
            upstream.sendTrailers(trailers)
            armPerTryTimeout()
        }
        sendMirrors()
        return .continue
    }

    func onStreamComplete() {
        let attempt = currentAttempt
        phase = .done
        cancelTimers()
        releaseRetryBudget()
        attempt?.cancel()
    }

    /// The client can take more response data again (or no more): the stream tells its
    /// router directly, so no closure is made per stream.
    func downstreamWritabilityChanged(_ writable: Bool) {
        currentAttempt?.request?.setResponseReadingPaused(!writable)
    }

    // MARK: attempts

    private func startAttempt() {
        guard let cluster, var head = upstreamHead else { return }
        attemptsMade += 1
        if sendsAttemptCount { head.headers.replaceOrAdd(name: "x-envoy-attempt-count", value: String(attemptsMade)) }
        let attempt = UpstreamAttempt(owner: self)
        phase = .attempting(attempt)
        // A retry sends the head alone when a body or trailers follow from the replay.
        let headEnds = requestComplete && (replay?.body?.readableBytes ?? 0) == 0 && replay?.trailers == nil
        let avoiding = retry?.policy.retryOtherHosts == true ? triedHosts : []
        let excludedPriorities = retry == nil ? [] : previousPriorities?.exclusionForNextAttempt() ?? []
        attempt.start(cluster: cluster, head: head, endStream: attemptsStarted == 0 ? requestComplete : headEnds,
                      avoiding: avoiding, excludingPriorities: excludedPriorities, hash: requestHash?.hash, client: client)
    }

    private func replayAbandoned() {
        guard let cluster else { return }
        // As Envoy's retry_or_shadow_abandoned: the request goes on, without retries or mirrors.
        stats.count("meshd_upstream_rq_retry_or_shadow_abandoned_total{cluster=\"\(cluster.name)\"}")
        retry = nil
        mirrors = []
    }

    /// Mirrors go out once the whole request is known, each a copy of it.
    private func sendMirrors() {
        guard !mirrors.isEmpty, let head = upstreamHead else { return }
        let targets = mirrors
        mirrors = []
        guard let replay, let body = replay.body, replay.canReplay else { return }
        // Its own timeout: the route's, else 15 s, so a hung mirror never holds a connection for long.
        let ms = timeoutMs > 0 ? timeoutMs : 15_000
        for target in targets {
            ShadowRequest.send(head, body: body, trailers: replay.trailers, to: target, client: client,
                               timers: timers, stats: stats, timeoutMs: ms)
        }
    }

    // MARK: UpstreamAttemptOwner

    func attemptStarted(_ attempt: UpstreamAttempt, host: String) {
        guard currentAttempt === attempt else { return }
        recordOutlier(.localOriginSuccess, host)
        attemptsStarted += 1
        // Only a retry reads them: without a policy no set is made per request.
        if retry != nil { triedHosts.insert(host) }
        if previousPriorities != nil, let cluster {
            let endpoint = cluster.endpoints.first { "\($0.address):\($0.port)" == host }
            previousPriorities?.attempted(priority: endpoint?.priority ?? 0)
        }
        stream.streamInfo.upstreamHost = host
        sentAt = .now()
        if attemptsStarted == 1 {
            if timeoutMs > 0 { timeout = timers.arm(after: .milliseconds(Int64(timeoutMs)), self) }
            if requestComplete { armPerTryTimeout() }
            stream.continueRequest(from: self)
            return
        }
        // A retry: what the client sent so far, then whatever still comes.
        guard let upstream = attempt.request else { return }
        if let body = replay?.body, body.readableBytes > 0 {
            upstream.sendData(body, endStream: requestComplete && replay?.trailers == nil)
        }
        if let trailers = replay?.trailers { upstream.sendTrailers(trailers) }
        replay?.replayed()
        if requestComplete { armPerTryTimeout() } else { stream.setRequestReadingPaused(!upstream.isWritable) }
    }

    func attemptResponseHead(_ head: ResponseHead, endStream: Bool) {
        guard currentAttempt != nil else { return }
        if let cluster { stats.upstreamResponse(cluster: cluster.name, code: head.status, host: currentAttempt?.pickedHost) }
        // A 1xx interim answer is not the response: nothing to decide yet.
        if head.status != 101, head.status < 200 { return forwardHead(head, endStream: endStream) }
        recordOutlier(.response(head.status), currentAttempt?.pickedHost)
        if retryAfter(.response(head)) { return }
        forwardHead(head, endStream: endStream)
    }

    private func forwardHead(_ head: ResponseHead, endStream: Bool) {
        var head = head
        responseHeaders?.apply(to: &head.headers)
        if let cookie = requestHash?.setCookie { head.headers.add(name: "set-cookie", value: cookie) }
        // A tunnel (101) lives as long as its peers want; the route timeout covered the handshake.
        if head.status == 101 || endStream { cancelTimers() }
        if let sentAt { stream.streamInfo.upstreamServiceTime = (NIODeadline.now() - sentAt).nanoseconds / 1_000_000 }
        stream.encodeHeaders(head, endStream: endStream)
    }

    func attemptResponseData(_ data: ByteBuffer, endStream: Bool) {
        guard currentAttempt != nil else { return }
        if endStream { cancelTimers() }
        stream.encodeData(data, endStream: endStream)
        if !endStream, !stream.isDownstreamWritable { currentAttempt?.request?.setResponseReadingPaused(true) }
    }

    func attemptResponseTrailers(_ trailers: HTTPHeaders) {
        guard currentAttempt != nil else { return }
        cancelTimers()
        stream.encodeTrailers(trailers)
    }

    func attemptWritabilityChanged(_ writable: Bool) {
        stream.setRequestReadingPaused(!writable)
    }

    func attemptFailed(_ attempt: UpstreamAttempt, _ failure: UpstreamFailure, responseStarted: Bool) {
        guard currentAttempt === attempt else { return }
        if retry != nil, let host = attempt.pickedHost { triedHosts.insert(host) }
        if case .overflow = failure {
            // As Envoy: an overflow is not retried; the retry budget held for this attempt goes back.
            releaseRetryBudget()
            return answerOverflow()
        }
        if failure == .noHealthyUpstream {
            releaseRetryBudget()
            phase = .done
            cancelTimers()
            if let cluster { stats.upstreamResponse(cluster: cluster.name, code: 503) }
            return stream.sendLocalReply(status: 503, body: UpstreamFailureReply.body(.noHealthyUpstream), headers: [:], flag: .noHealthyUpstream, from: self)
        }
        recordOutlier(.localOriginFailure, attempt.pickedHost)
        if !responseStarted {
            let outcome: AttemptOutcome = switch failure {
            case .connectFailure: .connectFailure
            case .reset(let why): .reset(refused: why == "REFUSED_STREAM")
            case .protocolError, .overflow, .noHealthyUpstream: .reset(refused: false)
            }
            if retryAfter(outcome) { return }
        }
        phase = .done
        cancelTimers()
        let (status, flag): (Int, ResponseFlag) = switch failure {
        case .connectFailure: (503, .upstreamConnectionFailure)
        case .reset: (502, .upstreamConnectionTermination)
        case .protocolError: (502, .upstreamProtocolError)
        case .overflow: (503, .upstreamOverflow)
        case .noHealthyUpstream: (503, .noHealthyUpstream)
        }
        let body = UpstreamFailureReply.body(failure)
        stream.streamInfo.upstreamTransportFailureReason = UpstreamFailureReply.transportReason(failure)
        if let cluster { stats.upstreamResponse(cluster: cluster.name, code: status, host: attempt.pickedHost) }
        if responseStarted { stream.resetStream(flag: flag) } else {
            stream.sendLocalReply(status: status, body: body, headers: [:], flag: flag, from: self)
        }
    }

    /// A circuit breaker of the cluster is full: 503 UO, `x-envoy-overloaded: true`, counted
    /// as Envoy's upstream_rq_pending_overflow (pending and active request breakers alike).
    private func answerOverflow() {
        phase = .done
        cancelTimers()
        guard let cluster else { return }
        stats.count("meshd_upstream_rq_pending_overflow_total{cluster=\"\(cluster.name)\"}")
        stats.upstreamResponse(cluster: cluster.name, code: 503)
        stream.sendLocalReply(status: 503, body: UpstreamFailureReply.body(.overflow("")),
                              headers: ["x-envoy-overloaded": "true"], flag: .upstreamOverflow, from: self)
    }

    /// Tells the cluster's outlier detector how the endpoint did, and counts an ejection.
    private func recordOutlier(_ outcome: OutlierDetector.Outcome, _ host: String?) {
        guard let cluster, cluster.outlierDetection != nil, let host else { return }
        let name = cluster.name
        switch OutlierDetectors.shared.record(outcome, host: host, cluster: cluster) {
        case .none: break
        case .ejected(let detector):
            stats.count("meshd_outlier_detection_ejections_total{cluster=\"\(name)\"}")
            stats.count("meshd_outlier_detection_ejections_enforced_\(detector.rawValue)_total{cluster=\"\(name)\"}")
        case .overflow:
            stats.count("meshd_outlier_detection_ejections_overflow_total{cluster=\"\(name)\"}")
        }
    }

    // MARK: retries

    /// Asks the retry policy about a failed or retriable attempt (nothing of it went
    /// downstream). True when a retry is scheduled; otherwise the outcome stands, with the
    /// response flag saying why it was not retried.
    private func retryAfter(_ outcome: AttemptOutcome) -> Bool {
        let hadRetried = heldRetryBudget != nil
        releaseRetryBudget()
        guard var state = retry, let cluster else { return false }
        let budget = cluster.maxRetries ?? 3
        let decision = state.decide(outcome, canReplay: replay?.canReplay ?? false, acquireBudget: {
            RetryBudget.shared.acquire(cluster: cluster.name, max: budget)
        })
        retry = state
        let name = cluster.name
        switch decision {
        case .retry(let backoffMs):
            heldRetryBudget = name
            stats.count("meshd_upstream_rq_retry_total{cluster=\"\(name)\"}")
            scheduleRetry(afterMs: backoffMs)
            return true
        case .no:
            if hadRetried { stats.count("meshd_upstream_rq_retry_success_total{cluster=\"\(name)\"}") }
        case .limitExceeded:
            stats.count("meshd_upstream_rq_retry_limit_exceeded_total{cluster=\"\(name)\"}")
            stream.streamInfo.addFlag(.upstreamRetryLimitExceeded)
        case .overflow:
            stats.count("meshd_upstream_rq_retry_overflow_total{cluster=\"\(name)\"}")
            stream.streamInfo.addFlag(.upstreamOverflow)
        }
        return false
    }

    private func scheduleRetry(afterMs ms: Int) {
        currentAttempt?.cancel()
        timers.cancel(perTryTimeout)
        perTryTimeout = nil
        phase = .backingOff
        // Whatever the client still sends waits in the kernel, not here, until the next attempt
        // (before any attempt started, the filter chain queues it, with its own backpressure).
        if !requestComplete, attemptsStarted > 0 { stream.setRequestReadingPaused(true) }
        backoff = timers.arm(after: .milliseconds(Int64(ms)), self)
    }

    private func releaseRetryBudget() {
        guard let name = heldRetryBudget else { return }
        heldRetryBudget = nil
        RetryBudget.shared.release(cluster: name)
    }

    // MARK: timers

    private func armPerTryTimeout() {
        guard perTryTimeout == nil, let ms = retry?.policy.perTryTimeoutMs, ms > 0, currentAttempt != nil else { return }
        perTryTimeout = timers.arm(after: .milliseconds(Int64(ms)), self)
    }

    private func cancelTimers() {
        timers.cancel(timeout)
        timers.cancel(perTryTimeout)
        timers.cancel(backoff)
        timeout = nil
        perTryTimeout = nil
        backoff = nil
    }

    func timerFired(_ token: LoopTimers.Token) {
        if token == backoff {
            backoff = nil
            if case .backingOff = phase { startAttempt() }
        } else if token == perTryTimeout {
            perTryTimeout = nil
            guard let attempt = currentAttempt, !attempt.isOver else { return }
            let responseStarted = attempt.responseStarted
            attempt.cancel()
            if !responseStarted, retryAfter(.perTryTimeout) { return }
            upstreamTimedOut(responseStarted: responseStarted)
        } else if token == timeout {
            timeout = nil
            switch phase {
            case .attempting(let attempt):
                guard !attempt.isOver else { return }
                let responseStarted = attempt.responseStarted
                attempt.cancel()
                upstreamTimedOut(responseStarted: responseStarted)
            case .backingOff:
                upstreamTimedOut(responseStarted: false)
            case .idle, .done:
                return
            }
        }
    }

    private func upstreamTimedOut(responseStarted: Bool) {
        phase = .done
        cancelTimers()
        if responseStarted { stream.resetStream(flag: .upstreamRequestTimeout) } else {
            stream.sendLocalReply(status: 504, body: "upstream request timeout", headers: [:],
                                  flag: .upstreamRequestTimeout, from: self)
        }
    }

    // MARK: helpers

    static func pickCluster(_ action: RouteAction) -> String? {
        if let c = action.cluster { return c }
        guard let weighted = action.weightedClusters, !weighted.isEmpty else { return nil }
        let total = weighted.reduce(0) { $0 + max(0, $1.weight) }
        guard total > 0 else { return nil }
        var pick = Int.random(in: 0..<total)
        for w in weighted where w.weight > 0 {
            if pick < w.weight { return w.name }
            pick -= w.weight
        }
        return weighted.last?.name
    }

    /// The mirror clusters this request is copied to, each by its share (unknown clusters
    /// cannot occur: the snapshot checks them).
    static func pickMirrors(_ action: RouteAction, snapshot: ProxySnapshot) -> [Cluster] {
        guard let policies = action.requestMirrorPolicies, !policies.isEmpty else { return [] }
        return policies.compactMap { p in
            let percent = p.percent ?? 100
            guard percent >= 100 || Double.random(in: 0..<100) < percent else { return nil }
            return snapshot.clusters[p.cluster]
        }
    }

    /// The endpoint a request names in its `:authority` (`host`, `host:port`, `[v6]:port`).
    static func originalDestination(_ authority: String) -> Endpoint? {
        var host = Substring(authority), port = 80
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if rest.hasPrefix(":") {
                guard let p = Int(rest.dropFirst()) else { return nil }
                port = p
            } else if !rest.isEmpty { return nil }
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]) else { return nil }
            port = p
            host = host[..<colon]
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
        return Endpoint(address: String(host), port: port)
    }

    static func rewrite(_ head: inout RequestHead, action: RouteAction, matchedPrefix: String?, regex: RE2Regex? = nil) {
        if let host = action.hostRewrite { head.authority = host }
        if let regex, let substitution = action.regexRewrite?.substitution {
            // Envoy rewrites the path only; the query string stays as it was.
            let cut = head.path.firstIndex(of: "?") ?? head.path.endIndex
            let path = String(head.path[..<cut])
            let rewritten = regex.replaceAll(in: path, with: substitution)
            if rewritten != path {
                head.headers.replaceOrAdd(name: "x-envoy-original-path", value: head.path)
                head.path = rewritten + head.path[cut...]
            }
        } else if let newPrefix = action.prefixRewrite, let prefix = matchedPrefix, head.path.hasPrefix(prefix) {
            head.headers.replaceOrAdd(name: "x-envoy-original-path", value: head.path)
            head.path = newPrefix + head.path.dropFirst(prefix.count)
            if head.path.isEmpty { head.path = "/" }
        } else if let newPath = action.pathRewrite {
            head.headers.replaceOrAdd(name: "x-envoy-original-path", value: head.path)
            head.path = RedirectAction.replacingPath(of: head.path, with: newPath)
        }
    }
}
