import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// The terminal filter: picks the cluster for the selected route, runs the request
/// upstream as an `UpstreamAttempt` (connect, send, relay) and feeds the response back
/// through the stream. It owns the route timeout; an attempt owns one try. It lives beside
/// the upstream pools it drives, and sees its stream only through `StreamControl`.
final class RouterFilter: HTTPFilter, UpstreamAttemptOwner, TimerTarget {
    private unowned let stream: StreamControl
    private let client: UpstreamClient
    private let stats: LoopStats
    private let timers: LoopTimers
    private var attempt: UpstreamAttempt?
    private var cluster: Cluster?
    private var timeout: LoopTimers.Token?
    private var sentAt: NIODeadline?
    /// The route timeout, armed once the request goes out (0: none).
    private var timeoutMs = 0
    private var responseHeaders: HeaderMutation?
    /// The stream is over for the router: nothing more is relayed.
    private var done = false

    init(stream: StreamControl, client: UpstreamClient, timers: LoopTimers, stats: LoopStats) {
        self.stream = stream
        self.client = client
        self.timers = timers
        self.stats = stats
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
              let cluster = stream.snapshot.clusters[clusterName] else {
            stream.sendLocalReply(status: 503, body: "cluster not found", headers: [:], flag: .noClusterFound, from: self)
            return .stop
        }
        self.cluster = cluster
        stream.streamInfo.clusterName = cluster.name
        Self.rewrite(&head, action: action, matchedPrefix: route.match.prefix)
        route.headers?.request?.apply(to: &head.headers)
        responseHeaders = route.headers?.response
        timeoutMs = action.timeoutMs ?? 15_000
        let attempt = UpstreamAttempt(owner: self)
        self.attempt = attempt
        attempt.start(cluster: cluster, head: head, endStream: endStream, client: client)
        return .stop
    }

    func onRequestData(_ data: inout ByteBuffer, endStream: Bool) -> FilterDataStatus {
        guard let upstream = attempt?.request else { return .continue }
        upstream.sendData(data, endStream: endStream)
        if !upstream.isWritable { stream.setRequestReadingPaused(true) }
        return .continue
    }

    func onRequestTrailers(_ trailers: inout HTTPHeaders) -> FilterHeadersStatus {
        attempt?.request?.sendTrailers(trailers)
        return .continue
    }

    func onStreamComplete() {
        done = true
        cancelTimeout()
        attempt?.cancel()
        attempt = nil
    }

    // MARK: UpstreamAttemptOwner

    func attemptStarted(_ attempt: UpstreamAttempt, host: String) {
        stream.streamInfo.upstreamHost = host
        stream.onDownstreamWritabilityChanged = { [weak self] writable in
            self?.attempt?.request?.setResponseReadingPaused(!writable)
        }
        sentAt = .now()
        if timeoutMs > 0 { timeout = timers.arm(after: .milliseconds(Int64(timeoutMs)), self) }
        stream.continueRequest(from: self)
    }

    func attemptResponseHead(_ head: ResponseHead, endStream: Bool) {
        guard !done else { return }
        var head = head
        responseHeaders?.apply(to: &head.headers)
        // A tunnel (101) lives as long as its peers want; the route timeout covered the handshake.
        if head.status == 101 || endStream { cancelTimeout() }
        if let sentAt { stream.streamInfo.upstreamServiceTime = (NIODeadline.now() - sentAt).nanoseconds / 1_000_000 }
        if let cluster { stats.upstreamResponse(cluster: cluster.name, code: head.status) }
        stream.encodeHeaders(head, endStream: endStream)
    }

    func attemptResponseData(_ data: ByteBuffer, endStream: Bool) {
        guard !done else { return }
        if endStream { cancelTimeout() }
        stream.encodeData(data, endStream: endStream)
        if !endStream, !stream.isDownstreamWritable { attempt?.request?.setResponseReadingPaused(true) }
    }

    func attemptResponseTrailers(_ trailers: HTTPHeaders) {
        guard !done else { return }
        cancelTimeout()
        stream.encodeTrailers(trailers)
    }

    func attemptWritabilityChanged(_ writable: Bool) {
        stream.setRequestReadingPaused(!writable)
    }

    func attemptFailed(_ attempt: UpstreamAttempt, _ failure: UpstreamFailure, responseStarted: Bool) {
        guard !done else { return }
        cancelTimeout()
        let (status, flag, body): (Int, ResponseFlag, String) = switch failure {
        case .connectFailure(let why):
            (503, .upstreamConnectionFailure, "upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: \(why)")
        case .reset(let why):
            (502, .upstreamConnectionTermination, "upstream connect error or disconnect/reset before headers. reset reason: connection termination, \(why)")
        case .protocolError(let why):
            (502, .upstreamProtocolError, "upstream protocol error: \(why)")
        }
        if let cluster { stats.upstreamResponse(cluster: cluster.name, code: status) }
        if responseStarted { stream.resetStream(flag: flag) } else {
            stream.sendLocalReply(status: status, body: body, headers: [:], flag: flag, from: self)
        }
    }

    // MARK: route timeout

    private func cancelTimeout() {
        timers.cancel(timeout)
        timeout = nil
    }

    func timerFired(_ token: LoopTimers.Token) {
        guard token == timeout else { return }
        timeout = nil
        guard !done, let attempt, !attempt.isOver else { return }
        let responseStarted = attempt.responseStarted
        attempt.cancel()
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

    static func rewrite(_ head: inout RequestHead, action: RouteAction, matchedPrefix: String?) {
        if let host = action.hostRewrite { head.authority = host }
        if let newPrefix = action.prefixRewrite, let prefix = matchedPrefix, head.path.hasPrefix(prefix) {
            head.headers.replaceOrAdd(name: "x-envoy-original-path", value: head.path)
            head.path = newPrefix + head.path.dropFirst(prefix.count)
            if head.path.isEmpty { head.path = "/" }
        } else if let newPath = action.pathRewrite {
            head.headers.replaceOrAdd(name: "x-envoy-original-path", value: head.path)
            head.path = RedirectAction.replacingPath(of: head.path, with: newPath)
        }
    }
}
