#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// One request/response exchange: owns the filter instances, moves the request through
/// them to the router and the response back to the client. Lives on one event loop.
final class HTTPStream: DownstreamStreamEvents, StreamControl, FilterChainEnds {
    let downstream: DownstreamStream
    let loop: LoopContext
    let snapshot: ProxySnapshot
    let listener: Listener
    var streamInfo = StreamInfo()
    var onDownstreamWritabilityChanged: ((Bool) -> Void)?

    /// Until `finish()`, which hands it back to the loop for another stream.
    private var chain: FilterChain?
    /// The chain's last filter, told directly when the client can take more response data.
    /// The chain holds it; cleared in `finish()`, before the chain lets go of it.
    private unowned(unsafe) var router: RouterFilter?
    private var requestHead: RequestHead?
    private var cachedRoute: SelectedRoute??
    /// Where the exchange stands towards the client. Only `finish()` enters `.finished`.
    private enum Phase {
        /// Nothing of the response has been written: a local reply may still replace it.
        case awaitingResponse
        /// The response head went to the client: a failure now can only reset the stream.
        case responding
        /// Filters were told, the access log written; nothing more happens.
        case finished
    }
    private var phase = Phase.awaitingResponse
    private var finished: Bool { if case .finished = phase { return true } else { return false } }
    private var responseStarted: Bool { if case .awaitingResponse = phase { return false } else { return true } }
    private var counters: LoopStats.Listener?

    init(downstream: DownstreamStream, loop: LoopContext, snapshot: ProxySnapshot, listener: Listener) {
        self.downstream = downstream
        self.loop = loop
        self.snapshot = snapshot
        self.listener = listener
    }

    var eventLoop: EventLoop { downstream.eventLoop }
    var connectionInfo: ConnectionInfo { downstream.connectionInfo }
    /// The client can take more response data: its side is writable and the response
    /// filters are not piling data up behind one that holds it (e.g. a Lua script waiting
    /// on an httpCall), so the router reads the upstream only then.
    var isDownstreamWritable: Bool { downstream.isWritable && !responsePressure }
    private var responsePressure = false

    /// The largest body a filter may buffer on this stream.
    var bufferLimit: Int { listener.perConnectionBufferLimitBytes ?? 1 << 20 }

    var route: SelectedRoute? {
        if let cachedRoute { return cachedRoute }
        guard let head = requestHead else { return nil }
        return route(for: head)
    }

    /// Selects from the head a filter holds now, so edits made before `clearRouteCache()`
    /// (a header a route matches on, a new :path) steer the choice.
    func route(for head: RequestHead) -> SelectedRoute? {
        if let cachedRoute { return cachedRoute }
        // No route tunnels CONNECT (Envoy needs a connect_matcher for it): 404 NR, as Envoy answers.
        guard head.method != "CONNECT", let table = snapshot.routeTables[listener.routeConfig] else { return nil }
        let selected = table.select(authority: head.authority, path: head.path, method: head.method, headers: head.headers)
        cachedRoute = .some(selected)
        streamInfo.routeName = selected?.name
        return selected
    }

    func clearRouteCache() { cachedRoute = nil }

    // MARK: downstream events

    func receiveHead(_ head: RequestHead, endStream: Bool) {
        var head = head
        streamInfo.startWallTime = Date().timeIntervalSince1970
        streamInfo.protocolVersion = head.version
        streamInfo.connection = downstream.connectionInfo
        HeaderSanitizer.prepareRequest(&head, connection: downstream.connectionInfo, requestIDs: &loop.requestIDs)
        if let tracer = loop.tracer {
            streamInfo.trace = tracer.begin(&head.headers, random: &loop.requestIDs, telemetry: snapshot.telemetry)
        }
        if listener.meshTLS != nil { HeaderSanitizer.setClientCertDetails(&head.headers, connection: downstream.connectionInfo) }
        streamInfo.method = head.method
        streamInfo.path = head.path
        streamInfo.authority = head.authority
        streamInfo.userAgent = head.headers.first(name: "user-agent")
        streamInfo.requestID = head.headers.first(name: "x-request-id")
        streamInfo.forwardedFor = head.headers.first(name: "x-forwarded-for")
        requestHead = head
        counters = loop.stats.listener(listener.name)
        counters?.requests += 1
        counters?.active += 1
        if loop.overload.contains(.disableHTTPKeepAlive) { downstream.drainConnection() }
        if loop.overload.contains(.stopAcceptingRequests) { return shedForOverload() }

        let chain = loop.filterChain(bufferLimit: bufferLimit, ends: self) { filters in
            let factories = snapshot.filterChains[listener.name] ?? []
            filters.reserveCapacity(factories.count + 1)
            for factory in factories { filters.append(factory.makeFilter(stream: self)) }
            let router = RouterFilter(stream: self, client: loop.pools, timers: loop.timers, stats: loop.stats)
            self.router = router
            filters.append(router)
        }
        self.chain = chain
        chain.receiveRequest(.headers(head, end: endStream))
    }

    /// Envoy's stop_accepting_requests: no filter is made, the request is answered at once.
    private func shedForOverload() {
        loop.stats.count("meshd_downstream_rq_overload_close_total{listener=\"\(listener.name)\"}")
        chain = loop.filterChain(bufferLimit: bufferLimit, ends: self) { _ in }
        sendLocalReply(status: 503, body: OverloadReply.body, headers: OverloadReply.headers, flag: .overloadManager, from: nil)
    }

    // MARK: FilterChainEnds

    func requestHeadersPassed(_ head: RequestHead, endStream: Bool) { requestHead = head }
    func requestDataPassed(_ data: ByteBuffer, endStream: Bool) {}
    func requestTrailersPassed(_ trailers: HTTPHeaders) {}
    func responseHeadersPassed(_ head: ResponseHead, endStream: Bool) { writeHead(head, endStream) }
    func responseDataPassed(_ data: ByteBuffer, endStream: Bool) { writeData(data, endStream) }
    func responseTrailersPassed(_ trailers: HTTPHeaders) { writeTrailers(trailers) }

    func bodyOverflowed(_ side: ChainSide) {
        switch side {
        case .request: sendLocalReply(status: 413, body: "Payload Too Large", headers: [:], flag: nil, from: nil)
        case .response: responseOverflow()
        }
    }

    func pressureChanged(_ side: ChainSide, _ pressed: Bool) {
        switch side {
        case .request:
            downstream.setRequestReadingPaused(pressed)
        case .response:
            responsePressure = pressed
            downstreamWritabilityChanged(isDownstreamWritable)
        }
    }

    private func downstreamWritabilityChanged(_ writable: Bool) {
        router?.downstreamWritabilityChanged(writable)
        onDownstreamWritabilityChanged?(writable)
    }

    func receiveData(_ data: ByteBuffer, endStream: Bool) {
        streamInfo.bytesReceived += data.readableBytes
        chain?.receiveRequest(.data(data, end: endStream))
    }

    func receiveTrailers(_ trailers: HTTPHeaders) {
        chain?.receiveRequest(.trailers(trailers))
    }

    func streamWritabilityChanged(_ writable: Bool) {
        downstreamWritabilityChanged(writable && !responsePressure)
    }

    func downstreamReset() {
        guard !finished else { return }
        streamInfo.addFlag(.downstreamConnectionTermination)
        finish()
    }

    // MARK: filter callbacks

    func continueRequest(from filter: HTTPFilter) { chain?.continueRequest(from: filter) }
    func continueResponse(from filter: HTTPFilter) { chain?.continueResponse(from: filter) }
    func continueRequest(from filter: HTTPFilter, replacingHead head: RequestHead?, replacingData data: ByteBuffer?) {
        chain?.continueRequest(from: filter, replacingHead: head, replacingData: data)
    }
    func continueResponse(from filter: HTTPFilter, replacingHead head: ResponseHead?, replacingData data: ByteBuffer?) {
        chain?.continueResponse(from: filter, replacingHead: head, replacingData: data)
    }

    func setRequestReadingPaused(_ paused: Bool) { downstream.setRequestReadingPaused(paused) }

    // MARK: what the loop lends filters

    var timers: LoopTimers { loop.timers }
    var stats: StatsScope? { loop.stats }
    var upstream: UpstreamClient? { loop.pools }
    func drainConnectionUponCompletion() { downstream.drainConnection() }

    func encodeHeaders(_ head: ResponseHead, endStream: Bool) {
        var head = head
        HeaderSanitizer.prepareResponse(&head)
        chain?.receiveResponse(.headers(head, end: endStream))
    }

    func encodeData(_ data: ByteBuffer, endStream: Bool) { chain?.receiveResponse(.data(data, end: endStream)) }
    func encodeTrailers(_ trailers: HTTPHeaders) { chain?.receiveResponse(.trailers(trailers)) }

    func sendLocalReply(status: Int, body: String, headers: HTTPHeaders, flag: ResponseFlag?, from filter: HTTPFilter?) {
        guard !finished else { return }
        if let flag { streamInfo.addFlag(flag) }
        guard !responseStarted else { return resetStream(flag: flag) }
        chain?.sendLocalReply(status: status, body: body, headers: headers, from: filter)
    }

    func resetStream(flag: ResponseFlag?) {
        guard !finished else { return }
        if let flag { streamInfo.addFlag(flag) }
        downstream.reset()
        finish()
    }

    // MARK: writing to the client

    private func writeHead(_ head: ResponseHead, _ end: Bool) {
        if !finished { phase = .responding }
        streamInfo.responseCode = head.status
        downstream.sendResponseHead(head, endStream: end)
        if end { responseDone() }
    }

    private func writeData(_ data: ByteBuffer, _ end: Bool) {
        streamInfo.bytesSent += data.readableBytes
        downstream.sendResponseData(data, endStream: end)
        if end { responseDone() }
    }

    private func writeTrailers(_ trailers: HTTPHeaders) {
        downstream.sendResponseTrailers(trailers)
        responseDone()
    }

    private func responseOverflow() {
        if responseStarted { resetStream(flag: nil) } else {
            sendLocalReply(status: 500, body: "Internal Server Error", headers: [:], flag: nil, from: nil)
        }
    }

    private func responseDone() { finish() }

    /// Runs once: tells every filter, then logs and counts the stream.
    private func finish() {
        guard !finished else { return }
        phase = .finished
        router = nil
        if let chain {
            chain.complete()
            self.chain = nil
            loop.recycle(chain)
        }
        onDownstreamWritabilityChanged = nil
        if let counters {
            counters.active -= 1
            counters.byClass[min(5, max(0, (streamInfo.responseCode ?? 0) / 100))] += 1
            counters.requestTime.observe(Double((NIODeadline.now() - streamInfo.startTime).nanoseconds) / 1e9)
        }
        if listener.accessLog ?? true {
            loop.accessLog.record(streamInfo, requestHeaders: requestHead?.headers, telemetry: snapshot.telemetry)
        }
        // Only a sampled stream becomes a span: the peer's address string is made for it alone.
        if let tracer = loop.tracer, streamInfo.trace?.sampled == true {
            tracer.end(streamInfo, kind: listener.trafficDirection == .inbound ? .server : .client,
                       scheme: connectionInfo.isTLS ? "https" : "http", peer: connectionInfo.remoteIP,
                       telemetry: snapshot.telemetry, requestHeaders: requestHead?.headers)
        }
    }
}
