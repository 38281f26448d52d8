import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// The terminal filter: picks the cluster and endpoint for the selected route, sends the
/// request upstream and feeds the response back through the stream. It lives beside the
/// upstream pools it drives rather than in the Filters module.
final class RouterFilter: HTTPFilter, UpstreamResponseHandler, TimerTarget {
    private unowned let stream: HTTPStream
    private let pools: UpstreamPools
    private let stats: LoopStats
    private var upstream: UpstreamRequest?
    private var cluster: Cluster?
    private var timeout: LoopTimers.Token?
    private let timers: LoopTimers
    private var sentAt: NIODeadline?
    private var responseStarted = false
    private var responseDone = false
    private var done = false
    private var responseHeaders: HeaderMutation?

    init(stream: HTTPStream, pools: UpstreamPools, timers: LoopTimers, stats: LoopStats) {
        self.stream = stream
        self.pools = pools
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
        let request = head
        pools.connection(for: cluster) { [weak self] result in
            guard let self, !self.done else {
                if case .success(let (c, _)) = result { c.onStateChange?() }
                return
            }
            switch result {
            case .success(let (connection, host)):
                self.stream.streamInfo.upstreamHost = host
                self.start(on: connection, request, endStream: endStream, timeoutMs: action.timeoutMs)
            case .failure(let failure):
                self.upstreamFailed(failure)
            }
        }
        return .stop
    }

    private func start(on connection: UpstreamConnection, _ head: RequestHead, endStream: Bool, timeoutMs: Int?) {
        guard let request = connection.startStream(handler: self) else {
            return upstreamFailed(.connectFailure("connection could not take a stream"))
        }
        upstream = request
        stream.onDownstreamWritabilityChanged = { [weak self] writable in
            self?.upstream?.setResponseReadingPaused(!writable)
        }
        let ms = timeoutMs ?? 15_000
        if ms > 0 {
            timeout = timers.arm(after: .milliseconds(Int64(ms)), self)
        }
        sentAt = .now()
        request.sendHead(head, endStream: endStream)
        stream.continueRequest(from: self)
    }

    func onRequestData(_ data: inout ByteBuffer, endStream: Bool) -> FilterDataStatus {
        guard let upstream else { return .continue }
        upstream.sendData(data, endStream: endStream)
        if !upstream.isWritable { stream.setRequestReadingPaused(true) }
        return .continue
    }

    func onRequestTrailers(_ trailers: inout HTTPHeaders) -> FilterHeadersStatus {
        upstream?.sendTrailers(trailers)
        return .continue
    }

    func onStreamComplete() {
        done = true
        cancelTimeout()
        if let upstream, !responseDone { upstream.cancel() }
        upstream = nil
    }

    // MARK: upstream response

    func upstreamHead(_ head: ResponseHead, endStream: Bool) {
        var head = head
        responseHeaders?.apply(to: &head.headers)
        responseStarted = true
        // A tunnel (101) lives as long as its peers want; the route timeout covered the handshake.
        if head.status == 101 { cancelTimeout() }
        if let sentAt { stream.streamInfo.upstreamServiceTime = (NIODeadline.now() - sentAt).nanoseconds / 1_000_000 }
        if let cluster { stats.upstreamResponse(cluster: cluster.name, code: head.status) }
        if endStream { finishResponse() }
        stream.encodeHeaders(head, endStream: endStream)
    }

    func upstreamData(_ data: ByteBuffer, endStream: Bool) {
        if endStream { finishResponse() }
        stream.encodeData(data, endStream: endStream)
        if !endStream, !stream.isDownstreamWritable { upstream?.setResponseReadingPaused(true) }
    }

    func upstreamTrailers(_ trailers: HTTPHeaders) {
        finishResponse()
        stream.encodeTrailers(trailers)
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        stream.setRequestReadingPaused(!writable)
    }

    func upstreamFailed(_ failure: UpstreamFailure) {
        guard !done, !responseDone else { return }
        cancelTimeout()
        upstream = nil
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

    private func finishResponse() {
        responseDone = true
        cancelTimeout()
    }

    private func cancelTimeout() {
        timers.cancel(timeout)
        timeout = nil
    }

    func timerFired(_ token: LoopTimers.Token) {
        guard token == timeout else { return }
        timeout = nil
        timedOut()
    }

    private func timedOut() {
        guard !done, !responseDone else { return }
        upstream?.cancel()
        upstream = nil
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
