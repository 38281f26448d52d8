import NIOCore
import NIOHTTP1

/// The direction-specific calls into a filter, so one iterator serves both directions.
protocol FilterDirection {
    associatedtype Head
    static func headers(_ f: HTTPFilter, _ h: inout Head, _ end: Bool) -> FilterHeadersStatus
    static func data(_ f: HTTPFilter, _ d: inout ByteBuffer, _ end: Bool) -> FilterDataStatus
    static func trailers(_ f: HTTPFilter, _ t: inout HTTPHeaders) -> FilterHeadersStatus
}

enum RequestDirection: FilterDirection {
    static func headers(_ f: HTTPFilter, _ h: inout RequestHead, _ end: Bool) -> FilterHeadersStatus {
        f.onRequestHeaders(&h, endStream: end)
    }
    static func data(_ f: HTTPFilter, _ d: inout ByteBuffer, _ end: Bool) -> FilterDataStatus { f.onRequestData(&d, endStream: end) }
    static func trailers(_ f: HTTPFilter, _ t: inout HTTPHeaders) -> FilterHeadersStatus { f.onRequestTrailers(&t) }
}

enum ResponseDirection: FilterDirection {
    static func headers(_ f: HTTPFilter, _ h: inout ResponseHead, _ end: Bool) -> FilterHeadersStatus {
        f.onResponseHeaders(&h, endStream: end)
    }
    static func data(_ f: HTTPFilter, _ d: inout ByteBuffer, _ end: Bool) -> FilterDataStatus { f.onResponseData(&d, endStream: end) }
    static func trailers(_ f: HTTPFilter, _ t: inout HTTPHeaders) -> FilterHeadersStatus { f.onResponseTrailers(&t) }
}

/// Where events go once they have passed every filter of a direction.
struct FilterSink<Head> {
    var headers: (Head, Bool) -> Void
    var data: (ByteBuffer, Bool) -> Void
    var trailers: (HTTPHeaders) -> Void
    /// The buffered body of one filter outgrew the limit.
    var overflow: () -> Void
    /// Events are piling up behind a stopped filter (true) or have drained (false).
    var pressure: (Bool) -> Void
}

/// Moves one direction's events (headers, body chunks, trailers) through the filters in
/// order. Events never overtake each other: while a filter holds one, later ones queue
/// behind it. A filter that asks for buffering absorbs chunks until the body ends, then
/// sees the whole body once.
final class FilterIterator<D: FilterDirection> {
    enum Event {
        case headers(D.Head, end: Bool)
        case data(ByteBuffer, end: Bool)
        case trailers(HTTPHeaders)

        var byteCount: Int {
            if case .data(let b, _) = self { return b.readableBytes }
            return 0
        }
    }

    private let filters: [HTTPFilter]
    private var sink: FilterSink<D.Head>
    private let bufferLimit: Int
    /// Events not yet past every filter; `queue[0]` is the one moving, at filter `position`.
    private var queue: [(event: Event, position: Int)] = []
    private var queuedBytes = 0
    /// The front event is held by the filter just before its position.
    private var blocked = false
    private var accumulating: (index: Int, buffer: ByteBuffer)?
    private var draining = false
    private var underPressure = false
    /// The filter being called right now, and whether it asked to resume during the call.
    private var calling: HTTPFilter?
    private var resumedDuringCall = false
    private(set) var aborted = false

    init(filters: [HTTPFilter], bufferLimit: Int, sink: FilterSink<D.Head>) {
        self.filters = filters
        self.bufferLimit = bufferLimit
        self.sink = sink
    }

    func receive(_ event: Event, startingAt start: Int = 0) {
        guard !aborted else { return }
        queue.append((event, start))
        queuedBytes += event.byteCount
        drain()
    }

    /// Stop moving anything; later events are dropped (the stream is being answered locally or reset).
    func abort() {
        aborted = true
        queue.removeAll()
        accumulating = nil
    }

    /// Resume after `filter` stopped the front event. A filter may also resume from inside
    /// its own callback (e.g. a pooled connection was ready at once); the stop it is about
    /// to return is then ignored.
    func resume(from filter: HTTPFilter) {
        if !blocked, let current = calling, current === filter {
            resumedDuringCall = true
            return
        }
        guard blocked, let front = queue.first, front.position > 0,
              filters[front.position - 1] === filter else { return }
        blocked = false
        drain()
    }

    private func drain() {
        // Re-entrancy (a filter calling resume from inside a callback) folds into the running loop.
        guard !draining else { return }
        draining = true
        defer { draining = false }
        while !blocked, !aborted, !queue.isEmpty {
            let (event, position) = queue.removeFirst()
            queuedBytes -= event.byteCount
            step(event, from: position)
        }
        let pressed = queuedBytes > bufferLimit
        if pressed != underPressure, !aborted {
            underPressure = pressed
            sink.pressure(pressed)
        }
    }

    /// Runs one event from filter `start` on; on a stop it goes back to the front of the queue.
    private func step(_ event: Event, from start: Int) {
        var i = start
        switch event {
        case .headers(var head, let end):
            while i < filters.count {
                let status = call(filters[i]) { D.headers($0, &head, end) }
                if aborted { return }
                i += 1
                if status == .stop { return hold(.headers(head, end: end), at: i) }
            }
            sink.headers(head, end)
        case .data(var data, let end):
            while i < filters.count {
                if var acc = accumulating, acc.index == i {
                    accumulating = nil
                    acc.buffer.writeImmutableBuffer(data)
                    guard acc.buffer.readableBytes <= bufferLimit else { return overflow() }
                    guard end else { accumulating = acc; return }
                    data = acc.buffer
                }
                let status = call(filters[i]) { D.data($0, &data, end) }
                if aborted { return }
                i += 1
                if status == .stopAndBuffer {
                    if end { return hold(.data(data, end: end), at: i) }
                    guard data.readableBytes <= bufferLimit else { return overflow() }
                    accumulating = (i - 1, data)
                    return
                }
            }
            sink.data(data, end)
        case .trailers(var trailers):
            while i < filters.count {
                if let acc = accumulating, acc.index == i {
                    // Trailers end the body: the buffering filter sees it whole, then the trailers follow.
                    accumulating = nil
                    var body = acc.buffer
                    let status = call(filters[i]) { D.data($0, &body, true) }
                    if aborted { return }
                    queue.insert((.trailers(trailers), i), at: 0)
                    queue.insert((.data(body, end: false), i + 1), at: 0)
                    queuedBytes += body.readableBytes
                    if status == .stopAndBuffer, !consumeEarlyResume() { blocked = true }
                    return
                }
                let status = call(filters[i]) { D.trailers($0, &trailers) }
                if aborted { return }
                i += 1
                if status == .stop { return hold(.trailers(trailers), at: i) }
            }
            sink.trailers(trailers)
        }
    }

    private func hold(_ event: Event, at position: Int) {
        queue.insert((event, position), at: 0)
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

    private func overflow() {
        aborted = true
        queue.removeAll()
        sink.overflow()
    }
}
