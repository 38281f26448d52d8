import NIOCore
import NIOHTTP1
import Transport

/// The direction-specific calls into a filter, so one iterator serves both directions.
package protocol FilterDirection {
    associatedtype Head
    static func headers(_ f: HTTPFilter, _ h: inout Head, _ end: Bool) -> FilterHeadersStatus
    static func data(_ f: HTTPFilter, _ d: inout ByteBuffer, _ end: Bool) -> FilterDataStatus
    static func trailers(_ f: HTTPFilter, _ t: inout HTTPHeaders) -> FilterHeadersStatus
}

package enum RequestDirection: FilterDirection {
    package static func headers(_ f: HTTPFilter, _ h: inout RequestHead, _ end: Bool) -> FilterHeadersStatus {
        f.onRequestHeaders(&h, endStream: end)
    }
    package static func data(_ f: HTTPFilter, _ d: inout ByteBuffer, _ end: Bool) -> FilterDataStatus { f.onRequestData(&d, endStream: end) }
    package static func trailers(_ f: HTTPFilter, _ t: inout HTTPHeaders) -> FilterHeadersStatus { f.onRequestTrailers(&t) }
}

package enum ResponseDirection: FilterDirection {
    package static func headers(_ f: HTTPFilter, _ h: inout ResponseHead, _ end: Bool) -> FilterHeadersStatus {
        f.onResponseHeaders(&h, endStream: end)
    }
    package static func data(_ f: HTTPFilter, _ d: inout ByteBuffer, _ end: Bool) -> FilterDataStatus { f.onResponseData(&d, endStream: end) }
    package static func trailers(_ f: HTTPFilter, _ t: inout HTTPHeaders) -> FilterHeadersStatus { f.onResponseTrailers(&t) }
}

/// Where events go once they have passed every filter of a direction.
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

    private let filters: [HTTPFilter]
    private var sink: FilterSink<D.Head>
    private let bufferLimit: Int
    /// Events not yet past every filter; `queue[0]` is the one moving, at filter `position`.
    private var queue: [(event: Event, position: Int)] = []
    private var queuedBytes = 0
    /// The front event is held by the filter just before its position.
    private var blocked = false
    private var accumulating: (index: Int, buffer: ByteBuffer)?
    /// The filter holding the front headers with `.stopIteration`.
    private var watcher: Int?
    private var draining = false
    private var underPressure = false
    /// The filter being called right now, and whether it asked to resume during the call.
    private var calling: HTTPFilter?
    private var resumedDuringCall = false
    private(set) var aborted = false

    package init(filters: [HTTPFilter], bufferLimit: Int, sink: FilterSink<D.Head>) {
        self.filters = filters
        self.bufferLimit = bufferLimit
        self.sink = sink
    }

    package func receive(_ event: Event, startingAt start: Int = 0) {
        guard !aborted else { return }
        queue.append((event, start))
        queuedBytes += event.byteCount
        drain()
    }

    /// Stop moving anything; later events are dropped (the stream is being answered locally or reset).
    package func abort() {
        aborted = true
        queue.removeAll()
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
              filters[front.position - 1] === filter else { return }
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
            sink.pressure(pressed)
        }
    }

    /// Runs one event from filter `start` on; on a stop it goes back to the front of the queue.
    private func step(_ event: Event, from start: Int) {
        var i = start
        // With a watcher, events go no further than it; they then wait behind the held headers.
        let watch = watcher
        let limit = watch.map { $0 + 1 } ?? filters.count
        switch event {
        case .headers(var head, let end):
            while i < limit {
                let status = call(filters[i]) { D.headers($0, &head, end) }
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
            sink.headers(head, end)
        case .data(var data, let end):
            while i < limit {
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
                if status == .stop { return hold(.data(data, end: end), at: i, watch) }
                if status == .stopAndBuffer {
                    if end { return hold(.data(data, end: end), at: i, watch) }
                    guard data.readableBytes <= bufferLimit else { return overflow() }
                    accumulating = (i - 1, data)
                    return
                }
            }
            if watch != nil { return park(.data(data, end: end), at: i, watch) }
            sink.data(data, end)
        case .trailers(var trailers):
            while i < limit {
                if let acc = accumulating, acc.index == i {
                    // Trailers end the body: the buffering filter sees it whole, then the trailers follow.
                    accumulating = nil
                    var body = acc.buffer
                    let status = call(filters[i]) { D.data($0, &body, true) }
                    if aborted { return }
                    let at = reentryIndex(watch)
                    queue.insert((.trailers(trailers), i), at: at)
                    queue.insert((.data(body, end: false), i + 1), at: at)
                    queuedBytes += body.readableBytes
                    if status != .continue, !consumeEarlyResume() { blocked = true }
                    return
                }
                let status = call(filters[i]) { D.trailers($0, &trailers) }
                if aborted { return }
                i += 1
                if status != .continue { return hold(.trailers(trailers), at: i, watch) }
            }
            if watch != nil { return park(.trailers(trailers), at: i, watch) }
            sink.trailers(trailers)
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
        queue.removeAll()
        sink.overflow()
    }
}
