import Foundation
import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// One request/response exchange: owns the filter instances, moves the request through
/// them to the router and the response back to the client. Lives on one event loop.
final class HTTPStream: DownstreamStreamEvents, StreamControl {
    let downstream: DownstreamStream
    let loop: LoopContext
    let snapshot: ProxySnapshot
    let listener: Listener
    var streamInfo = StreamInfo()
    var onDownstreamWritabilityChanged: ((Bool) -> Void)?

    private var filters: [HTTPFilter] = []
    private var request: FilterIterator<RequestDirection>!
    private var response: FilterIterator<ResponseDirection>!
    private var requestHead: RequestHead?
    private var cachedRoute: SelectedRoute??
    private var responseStarted = false
    private var responseComplete = false
    private var finished = false
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
        HeaderSanitizer.prepareRequest(&head, connection: downstream.connectionInfo, requestIDs: &loop.requestIDs)
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

        let limit = bufferLimit
        filters = (snapshot.filterChains[listener.name] ?? []).map { $0.makeFilter(stream: self) }
        filters.append(RouterFilter(stream: self, pools: loop.pools, timers: loop.timers, stats: loop.stats))
        request = FilterIterator(filters: filters, bufferLimit: limit, sink: FilterSink(
            headers: { [unowned self] h, _ in self.requestHead = h },
            data: { _, _ in }, trailers: { _ in },
            overflow: { [unowned self] in
                self.sendLocalReply(status: 413, body: "Payload Too Large", headers: [:], flag: nil, from: nil)
            },
            pressure: { [unowned self] in self.downstream.setRequestReadingPaused($0) }))
        response = FilterIterator(filters: filters.reversed(), bufferLimit: limit, sink: FilterSink(
            headers: { [unowned self] h, end in self.writeHead(h, end) },
            data: { [unowned self] d, end in self.writeData(d, end) },
            trailers: { [unowned self] t in self.writeTrailers(t) },
            overflow: { [unowned self] in self.responseOverflow() },
            pressure: { [unowned self] pressed in
                self.responsePressure = pressed
                self.onDownstreamWritabilityChanged?(self.isDownstreamWritable)
            }))
        request.receive(.headers(head, end: endStream))
    }

    func receiveData(_ data: ByteBuffer, endStream: Bool) {
        streamInfo.bytesReceived += data.readableBytes
        request?.receive(.data(data, end: endStream))
    }

    func receiveTrailers(_ trailers: HTTPHeaders) {
        request?.receive(.trailers(trailers))
    }

    func streamWritabilityChanged(_ writable: Bool) {
        onDownstreamWritabilityChanged?(writable && !responsePressure)
    }

    func downstreamReset() {
        guard !finished else { return }
        streamInfo.addFlag(.downstreamConnectionTermination)
        finish()
    }

    // MARK: filter callbacks

    func continueRequest(from filter: HTTPFilter) { request?.resume(from: filter) }
    func continueResponse(from filter: HTTPFilter) { response?.resume(from: filter) }
    func continueRequest(from filter: HTTPFilter, replacingHead head: RequestHead) {
        request?.resume(from: filter, replacingHead: head)
    }
    func continueResponse(from filter: HTTPFilter, replacingHead head: ResponseHead) {
        response?.resume(from: filter, replacingHead: head)
    }
    func continueRequest(from filter: HTTPFilter, replacingHead head: RequestHead?, replacingData data: ByteBuffer?) {
        request?.resume(from: filter, replacingHead: head, replacingData: data)
    }
    func continueResponse(from filter: HTTPFilter, replacingHead head: ResponseHead?, replacingData data: ByteBuffer?) {
        response?.resume(from: filter, replacingHead: head, replacingData: data)
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
        response.receive(.headers(head, end: endStream))
    }

    func encodeData(_ data: ByteBuffer, endStream: Bool) { response.receive(.data(data, end: endStream)) }
    func encodeTrailers(_ trailers: HTTPHeaders) { response.receive(.trailers(trailers)) }

    func sendLocalReply(status: Int, body: String, headers: HTTPHeaders, flag: ResponseFlag?, from filter: HTTPFilter?) {
        guard !finished else { return }
        if let flag { streamInfo.addFlag(flag) }
        guard !responseStarted else { return resetStream(flag: flag) }
        request?.abort()
        response?.abort()
        var head = ResponseHead(status: status, headers: headers)
        head.headers.replaceOrAdd(name: "content-length", value: String(body.utf8.count))
        if !body.isEmpty, !head.headers.contains(name: "content-type") {
            head.headers.replaceOrAdd(name: "content-type", value: "text/plain")
        }
        head.headers.replaceOrAdd(name: "server", value: "meshd")
        // The reply passes the filters between the one that sent it and the client.
        let start = filter.flatMap { f in filters.reversed().firstIndex { $0 === f }.map { $0 + 1 } } ?? 0
        response = FilterIterator(filters: filters.reversed(), bufferLimit: Int.max, sink: FilterSink(
            headers: { [unowned self] h, end in self.writeHead(h, end) },
            data: { [unowned self] d, end in self.writeData(d, end) },
            trailers: { [unowned self] t in self.writeTrailers(t) },
            overflow: {}, pressure: { _ in }))
        response.receive(.headers(head, end: body.isEmpty), startingAt: start)
        if !body.isEmpty {
            response.receive(.data(ByteBuffer(string: body), end: true), startingAt: start)
        }
    }

    func resetStream(flag: ResponseFlag?) {
        guard !finished else { return }
        if let flag { streamInfo.addFlag(flag) }
        downstream.reset()
        finish()
    }

    // MARK: writing to the client

    private func writeHead(_ head: ResponseHead, _ end: Bool) {
        responseStarted = true
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

    private func responseDone() {
        responseComplete = true
        finish()
    }

    /// Runs once: tells every filter, then logs and counts the stream.
    private func finish() {
        guard !finished else { return }
        finished = true
        request?.abort()
        response?.abort()
        for f in filters { f.onStreamComplete() }
        filters.removeAll()
        onDownstreamWritabilityChanged = nil
        if let counters {
            counters.active -= 1
            counters.byClass[min(5, max(0, (streamInfo.responseCode ?? 0) / 100))] += 1
        }
        if listener.accessLog ?? true { loop.accessLog.record(streamInfo) }
    }
}
