import NIOCore
import NIOHTTP1
import Transport

/// Which way events flow through a chain.
package enum ChainSide: Sendable {
    case request, response
}

/// The two ends of a filter chain: what leaves the last request filter (towards the
/// upstream) and the first response filter (towards the client), and what overflow and
/// pressure mean on each side. The stream itself answers for both ends, so wiring a chain
/// allocates no closures (there were ten per stream).
package protocol FilterChainEnds: AnyObject {
    func requestHeadersPassed(_ head: RequestHead, endStream: Bool)
    func requestDataPassed(_ data: ByteBuffer, endStream: Bool)
    func requestTrailersPassed(_ trailers: HTTPHeaders)
    func responseHeadersPassed(_ head: ResponseHead, endStream: Bool)
    func responseDataPassed(_ data: ByteBuffer, endStream: Bool)
    func responseTrailersPassed(_ trailers: HTTPHeaders)
    /// The buffered body of one filter on `side` outgrew the limit.
    func bodyOverflowed(_ side: ChainSide)
    /// Events are piling up behind a stopped filter on `side` (true) or have drained (false).
    func pressureChanged(_ side: ChainSide, _ pressed: Bool)
}

/// The direction-specific calls into a filter and out of the chain, so one iterator serves both directions.
package protocol FilterDirection {
    associatedtype Head
    static var side: ChainSide { get }
    static func headers(_ f: HTTPFilter, _ h: inout Head, _ end: Bool) -> FilterHeadersStatus
    static func data(_ f: HTTPFilter, _ d: inout ByteBuffer, _ end: Bool) -> FilterDataStatus
    static func trailers(_ f: HTTPFilter, _ t: inout HTTPHeaders) -> FilterHeadersStatus
    static func passHeaders(_ h: Head, _ end: Bool, to ends: FilterChainEnds)
    static func passData(_ d: ByteBuffer, _ end: Bool, to ends: FilterChainEnds)
    static func passTrailers(_ t: HTTPHeaders, to ends: FilterChainEnds)
    /// An end that calls `sink`'s closures (tests and offline runs wire chains that way).
    static func ends(calling sink: FilterSink<Head>) -> FilterChainEnds
}

package enum RequestDirection: FilterDirection {
    package static var side: ChainSide { .request }
    package static func headers(_ f: HTTPFilter, _ h: inout RequestHead, _ end: Bool) -> FilterHeadersStatus {
        f.onRequestHeaders(&h, endStream: end)
    }
    package static func data(_ f: HTTPFilter, _ d: inout ByteBuffer, _ end: Bool) -> FilterDataStatus { f.onRequestData(&d, endStream: end) }
    package static func trailers(_ f: HTTPFilter, _ t: inout HTTPHeaders) -> FilterHeadersStatus { f.onRequestTrailers(&t) }
    package static func passHeaders(_ h: RequestHead, _ end: Bool, to ends: FilterChainEnds) {
        ends.requestHeadersPassed(h, endStream: end)
    }
    package static func passData(_ d: ByteBuffer, _ end: Bool, to ends: FilterChainEnds) { ends.requestDataPassed(d, endStream: end) }
    package static func passTrailers(_ t: HTTPHeaders, to ends: FilterChainEnds) { ends.requestTrailersPassed(t) }
    package static func ends(calling sink: FilterSink<RequestHead>) -> FilterChainEnds { SinkEnds(request: sink) }
}

package enum ResponseDirection: FilterDirection {
    package static var side: ChainSide { .response }
    package static func headers(_ f: HTTPFilter, _ h: inout ResponseHead, _ end: Bool) -> FilterHeadersStatus {
        f.onResponseHeaders(&h, endStream: end)
    }
    package static func data(_ f: HTTPFilter, _ d: inout ByteBuffer, _ end: Bool) -> FilterDataStatus { f.onResponseData(&d, endStream: end) }
    package static func trailers(_ f: HTTPFilter, _ t: inout HTTPHeaders) -> FilterHeadersStatus { f.onResponseTrailers(&t) }
    package static func passHeaders(_ h: ResponseHead, _ end: Bool, to ends: FilterChainEnds) {
        ends.responseHeadersPassed(h, endStream: end)
    }
    package static func passData(_ d: ByteBuffer, _ end: Bool, to ends: FilterChainEnds) { ends.responseDataPassed(d, endStream: end) }
    package static func passTrailers(_ t: HTTPHeaders, to ends: FilterChainEnds) { ends.responseTrailersPassed(t) }
    package static func ends(calling sink: FilterSink<ResponseHead>) -> FilterChainEnds { SinkEnds(response: sink) }
}

/// Where events go once they have passed every filter of a direction, as closures: the
/// tests' and the offline runner's way to wire a chain (the engine's stream is its own `FilterChainEnds`).
package struct FilterSink<Head> {
    package var headers: (Head, Bool) -> Void
    package var data: (ByteBuffer, Bool) -> Void
    package var trailers: (HTTPHeaders) -> Void
    /// The buffered body of one filter outgrew the limit.
    package var overflow: () -> Void
    /// Events are piling up behind a stopped filter (true) or have drained (false).
    package var pressure: (Bool) -> Void

    package init(headers: @escaping (Head, Bool) -> Void, data: @escaping (ByteBuffer, Bool) -> Void,
                 trailers: @escaping (HTTPHeaders) -> Void, overflow: @escaping () -> Void,
                 pressure: @escaping (Bool) -> Void) {
        self.headers = headers
        self.data = data
        self.trailers = trailers
        self.overflow = overflow
        self.pressure = pressure
    }
}

/// `FilterChainEnds` over closure sinks; the chain or iterator that made it keeps it alive.
final class SinkEnds: FilterChainEnds {
    private var request: FilterSink<RequestHead>?
    private var response: FilterSink<ResponseHead>?

    init(request: FilterSink<RequestHead>? = nil, response: FilterSink<ResponseHead>? = nil) {
        self.request = request
        self.response = response
    }

    func requestHeadersPassed(_ head: RequestHead, endStream: Bool) { request?.headers(head, endStream) }
    func requestDataPassed(_ data: ByteBuffer, endStream: Bool) { request?.data(data, endStream) }
    func requestTrailersPassed(_ trailers: HTTPHeaders) { request?.trailers(trailers) }
    func responseHeadersPassed(_ head: ResponseHead, endStream: Bool) { response?.headers(head, endStream) }
    func responseDataPassed(_ data: ByteBuffer, endStream: Bool) { response?.data(data, endStream) }
    func responseTrailersPassed(_ trailers: HTTPHeaders) { response?.trailers(trailers) }
    func bodyOverflowed(_ side: ChainSide) {
        switch side {
        case .request: request?.overflow()
        case .response: response?.overflow()
        }
    }
    func pressureChanged(_ side: ChainSide, _ pressed: Bool) {
        switch side {
        case .request: request?.pressure(pressed)
        case .response: response?.pressure(pressed)
        }
    }
}

/// Moves one direction's events (headers, body chunks, trailers) through the filters in
/// order. Events never overtake each other: while a filter holds one, later ones queue
/// behind it. A filter that asks for buffering absorbs chunks until the body ends, then
/// sees the whole body once. A filter answering `.stopIteration` on headers (the
/// "watcher") holds them but still sees later events, which then queue behind the headers.
/// Limitation: while a watcher holds the headers, a stop by a filter before it is ignored.
package final class FilterIterator<D: FilterDirection> {
    package enum Event {
        case headers(D.Head, end: Bool)
        case data(ByteBuffer, end: Bool)
        case trailers(HTTPHeaders)

        package var byteCount: Int {
            if case .data(let b, _) = self { return b.readableBytes }
            return 0
        }
    }

    /// The chain's filters, in request order; a response iterator walks them backwards.
    private var filters: [HTTPFilter]
    private let reversed: Bool
    /// Where events go past the last filter. The owner of the chain outlives it (it holds
    /// the chain), so no reference count is taken per event.
    private unowned(unsafe) var ends: FilterChainEnds
    /// The closure adapter of `init(filters:bufferLimit:sink:)`, which only the iterator holds.
    private var ownedEnds: FilterChainEnds?
    private var bufferLimit: Int
    /// Events not yet past every filter; `queue[0]` is the one moving, at filter `position`.
    private var queue: [(event: Event, position: Int)] = []
    private var queuedBytes = 0
    /// The front event is held by the filter just before its position.
    private var blocked = false
    private var accumulating: (index: Int, buffer: ByteBuffer)?
    /// The filter holding the front headers with `.stopIteration`.
    private var watcher: Int?
    private(set) var draining = false
    private var underPressure = false
    /// The filter being called right now, and whether it asked to resume during the call.
    private var calling: HTTPFilter?
    private var resumedDuringCall = false
    private(set) var aborted = false

    /// An iterator over `filters` in order whose ends are `sink`'s closures.
    package convenience init(filters: [HTTPFilter], bufferLimit: Int, sink: FilterSink<D.Head>) {
        let ends = D.ends(calling: sink)
        self.init(filters: filters, reversed: false, bufferLimit: bufferLimit, ends: ends)
        ownedEnds = ends
    }

    /// `reversed`: walk `filters` from the last to the first (the response direction).
    /// `ends` must outlive the iterator.
    package init(filters: [HTTPFilter], reversed: Bool, bufferLimit: Int, ends: FilterChainEnds) {
        self.filters = filters
        self.reversed = reversed
        self.bufferLimit = bufferLimit
        self.ends = ends
    }

    /// Makes a spent iterator new for another stream (its queue keeps its capacity).
    /// Not while it is draining: a caller up the stack would resume on the new stream's state.
    package func reset(filters: [HTTPFilter], bufferLimit: Int, ends: FilterChainEnds) {
        precondition(!draining, "a filter iterator is reused while it runs")
        self.filters = filters
        self.bufferLimit = bufferLimit
        self.ends = ends
        ownedEnds = nil
        queue.removeAll(keepingCapacity: true)
        queuedBytes = 0
        blocked = false
        accumulating = nil
        watcher = nil
        underPressure = false
        calling = nil
        resumedDuringCall = false
        aborted = false
    }

    /// Lets go of the filters (the chain is done with them).
    package func releaseFilters() { filters = [] }

    private var count: Int { filters.count }

    private func filterAt(_ i: Int) -> HTTPFilter {
        reversed ? filters[filters.count - 1 - i] : filters[i]
    }

    package func receive(_ event: Event, startingAt start: Int = 0) {
        guard !aborted else { return }
        if queue.isEmpty, !blocked, !draining {
            // Nothing ahead of it: the event moves at once, without a trip through the queue.
            draining = true
            step(event, from: start)
            draining = false
            drain()
            return
        }
        queue.append((event, start))
        queuedBytes += event.byteCount
        drain()
    }

    /// Stop moving anything; later events are dropped (the stream is being answered locally or reset).
    /// The queue keeps its storage for the chain's next stream (the router's early resume
    /// passes each request head through it).
    package func abort() {
        aborted = true
        queue.removeAll(keepingCapacity: true)
        accumulating = nil
        watcher = nil
    }

    /// Resume after `filter` stopped the front event. A filter may also resume from inside
    /// its own callback (e.g. a pooled connection was ready at once); the stop it is about
    /// to return is then ignored. `head` replaces held headers (a watcher's edits); `data`
    /// replaces the held body chunk, or for a watcher the first body event parked behind
    /// its headers (a body it kept editing while holding), or when none is parked there,
    /// becomes the body behind them.
    package func resume(from filter: HTTPFilter, replacingHead head: D.Head? = nil, replacingData data: ByteBuffer? = nil) {
        if !blocked, let current = calling, current === filter {
            resumedDuringCall = true
            return
        }
        guard blocked, let front = queue.first, front.position > 0,
              filterAt(front.position - 1) === filter else { return }
        if let head, case .headers(_, let end) = front.event { queue[0].event = .headers(head, end: end) }
        if let data {
            let held = queue.firstIndex { entry in
                guard entry.position == front.position, case .data = entry.event else { return false }
                return true
            }
            if let held, case .data(let old, let end) = queue[held].event {
                queuedBytes += data.readableBytes - old.readableBytes
                queue[held].event = .data(data, end: end)
            } else if held == nil, case .headers(let h, let end) = queue[0].event {
                // A watcher made a body where there was none (Lua's body(true):setBytes on a
                // message without one): it follows the headers, which no longer end the stream.
                queue[0].event = .headers(h, end: false)
                queue.insert((.data(data, end: end), front.position), at: 1)
                queuedBytes += data.readableBytes
            }
        }
        blocked = false
        watcher = nil
        drain()
    }

    private func drain() {
        // Re-entrancy (a filter calling resume from inside a callback) folds into the running loop.
        guard !draining else { return }
        draining = true
        defer { draining = false }
        while !aborted {
            let index: Int
            if !blocked, !queue.isEmpty {
                index = 0
            } else if blocked, let w = watcher, let next = queue.firstIndex(where: { $0.position <= w }) {
                index = next  // an event the watcher has not seen yet
            } else {
                break
            }
            let (event, position) = queue.remove(at: index)
            queuedBytes -= event.byteCount
            step(event, from: position)
        }
        let pressed = queuedBytes > bufferLimit
        if pressed != underPressure, !aborted {
            underPressure = pressed
            ends.pressureChanged(D.side, pressed)
        }
    }

    /// Runs one event from filter `start` on; on a stop it goes back to the front of the queue.
    private func step(_ event: Event, from start: Int) {
        var i = start
        // With a watcher, events go no further than it; they then wait behind the held headers.
        let watch = watcher
        let limit = watch.map { $0 + 1 } ?? count
        switch event {
        case .headers(var head, let end):
            while i < limit {
                let status = call(filterAt(i)) { D.headers($0, &head, end) }
                if aborted { return }
                i += 1
                if status == .stop { return hold(.headers(head, end: end), at: i, watch) }
                if status == .stopIteration {
                    hold(.headers(head, end: end), at: i, watch)
                    if blocked { watcher = i - 1 }
                    return
                }
            }
            if watch != nil { return park(.headers(head, end: end), at: i, watch) }
            D.passHeaders(head, end, to: ends)
        case .data(var data, let end):
            while i < limit {
                if var acc = accumulating, acc.index == i {
                    accumulating = nil
                    acc.buffer.writeImmutableBuffer(data)
                    guard acc.buffer.readableBytes <= bufferLimit else { return overflow() }
                    guard end else { accumulating = acc; return }
                    data = acc.buffer
                }
                let status = call(filterAt(i)) { D.data($0, &data, end) }
                if aborted { return }
                i += 1
                if status == .stop { return hold(.data(data, end: end), at: i, watch) }
                if status == .stopAndBuffer {
                    if end { return hold(.data(data, end: end), at: i, watch) }
                    guard data.readableBytes <= bufferLimit else { return overflow() }
                    accumulating = (i - 1, data)
                    return
                }
            }
            if watch != nil { return park(.data(data, end: end), at: i, watch) }
            D.passData(data, end, to: ends)
        case .trailers(var trailers):
            while i < limit {
                if let acc = accumulating, acc.index == i {
                    // Trailers end the body: the buffering filter sees it whole, then the trailers follow.
                    accumulating = nil
                    var body = acc.buffer
                    let status = call(filterAt(i)) { D.data($0, &body, true) }
                    if aborted { return }
                    let at = reentryIndex(watch)
                    queue.insert((.trailers(trailers), i), at: at)
                    queue.insert((.data(body, end: false), i + 1), at: at)
                    queuedBytes += body.readableBytes
                    if status != .continue, !consumeEarlyResume() { blocked = true }
                    return
                }
                let status = call(filterAt(i)) { D.trailers($0, &trailers) }
                if aborted { return }
                i += 1
                if status != .continue { return hold(.trailers(trailers), at: i, watch) }
            }
            if watch != nil { return park(.trailers(trailers), at: i, watch) }
            D.passTrailers(trailers, to: ends)
        }
    }

    private func hold(_ event: Event, at position: Int, _ watch: Int?) {
        queue.insert((event, position), at: reentryIndex(watch))
        queuedBytes += event.byteCount
        if !consumeEarlyResume() { blocked = true }
    }

    private func call<S>(_ filter: HTTPFilter, _ body: (HTTPFilter) -> S) -> S {
        calling = filter
        resumedDuringCall = false
        defer { calling = nil }
        return body(filter)
    }

    private func consumeEarlyResume() -> Bool {
        defer { resumedDuringCall = false }
        return resumedDuringCall
    }

    /// An event the watcher has seen: it waits behind the held headers, in arrival order.
    private func park(_ event: Event, at position: Int, _ watch: Int?) {
        queue.insert((event, position), at: reentryIndex(watch))
        queuedBytes += event.byteCount
    }

    /// Where an event re-enters the queue: at the front, or while a watcher holds the
    /// headers, after the events it has seen and before those it has not.
    private func reentryIndex(_ watch: Int?) -> Int {
        guard let w = watch else { return 0 }
        return queue.firstIndex { $0.position <= w } ?? queue.count
    }

    private func overflow() {
        aborted = true
        queue.removeAll(keepingCapacity: true)
        ends.bodyOverflowed(D.side)
    }
}
