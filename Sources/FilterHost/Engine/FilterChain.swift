import NIOCore
import NIOHTTP1
import Transport

/// One stream's filters and the iterators through them in both directions: what every
/// stream that hosts filters shares — the engine's `HTTPStream`, the offline
/// `PluginTestStream` and the unit tests' harness. The owner supplies the two ends (what
/// leaves the last request filter, what reaches the client) and says what overflow and
/// pressure mean for it; the chain does the wiring, resumption and the local-reply path.
package final class FilterChain {
    package private(set) var filters: [HTTPFilter]
    private let request: FilterIterator<RequestDirection>
    private var response: FilterIterator<ResponseDirection>
    /// Both ends; the owner holds the chain, so the chain does not hold it.
    private unowned(unsafe) var ends: FilterChainEnds
    /// The closure adapter of the `FilterSink` init, which only the chain holds.
    private var ownedEnds: FilterChainEnds?
    private var completed = false

    /// `ends` (which must outlive the chain) takes what leaves the last request filter and
    /// the first response filter, and says what overflow and pressure mean on each side.
    package init(filters: [HTTPFilter], bufferLimit: Int, ends: FilterChainEnds) {
        self.filters = filters
        self.ends = ends
        request = FilterIterator(filters: filters, reversed: false, bufferLimit: bufferLimit, ends: ends)
        response = FilterIterator(filters: filters, reversed: true, bufferLimit: bufferLimit, ends: ends)
    }

    /// `upstream`: where requests go after the last filter; `client`: where responses go
    /// after the first. Their `overflow`/`pressure` are the owner's answers for each side.
    package convenience init(filters: [HTTPFilter], bufferLimit: Int, upstream: FilterSink<RequestHead>,
                             client: FilterSink<ResponseHead>) {
        let ends = SinkEnds(request: upstream, response: client)
        self.init(filters: filters, bufferLimit: bufferLimit, ends: ends)
        ownedEnds = ends
    }

    /// A completed chain that no iterator is running through can serve another stream.
    package var isReusable: Bool { completed && !request.draining && !response.draining }

    /// Makes a completed chain new for another stream, keeping its arrays' capacity:
    /// `filters` is filled with `makeFilters` (the last one is usually the router).
    package func reuse(bufferLimit: Int, ends: FilterChainEnds, makeFilters: (inout [HTTPFilter]) -> Void) {
        precondition(isReusable, "a filter chain is reused before it completed")
        completed = false
        self.ends = ends
        ownedEnds = nil
        makeFilters(&filters)
        request.reset(filters: filters, bufferLimit: bufferLimit, ends: ends)
        response.reset(filters: filters, bufferLimit: bufferLimit, ends: ends)
    }

    // MARK: events in

    package func receiveRequest(_ event: FilterIterator<RequestDirection>.Event) { request.receive(event) }
    package func receiveResponse(_ event: FilterIterator<ResponseDirection>.Event) { response.receive(event) }

    // MARK: filter callbacks

    package func continueRequest(from filter: HTTPFilter, replacingHead head: RequestHead? = nil,
                                 replacingData data: ByteBuffer? = nil) {
        request.resume(from: filter, replacingHead: head, replacingData: data)
    }

    package func continueResponse(from filter: HTTPFilter, replacingHead head: ResponseHead? = nil,
                                  replacingData data: ByteBuffer? = nil) {
        response.resume(from: filter, replacingHead: head, replacingData: data)
    }

    /// Envoy's local reply: both directions stop; the reply (with `content-length`, a
    /// `content-type` for a body, `server: meshd`) passes the response filters between the
    /// one that sent it and the client — not the sender's own.
    @discardableResult
    package func sendLocalReply(status: Int, body: String, headers: HTTPHeaders, from filter: HTTPFilter?) -> ResponseHead {
        abort()
        var head = ResponseHead(status: status, headers: headers)
        head.headers.replaceOrAdd(name: "content-length", value: String(body.utf8.count))
        if !body.isEmpty, !head.headers.contains(name: "content-type") {
            head.headers.replaceOrAdd(name: "content-type", value: "text/plain")
        }
        head.headers.replaceOrAdd(name: "server", value: "meshd")
        // Counted on the response side: the filters run last to first.
        let start = filter.flatMap { f in filters.lastIndex { $0 === f }.map { filters.count - $0 } } ?? 0
        // No limit on the reply's way out: it can neither overflow nor press.
        response = FilterIterator(filters: filters, reversed: true, bufferLimit: Int.max, ends: ends)
        response.receive(.headers(head, end: body.isEmpty), startingAt: start)
        if !body.isEmpty { response.receive(.data(ByteBuffer(string: body), end: true), startingAt: start) }
        return head
    }

    /// Stops both directions: nothing queued moves on.
    package func abort() {
        request.abort()
        response.abort()
    }

    /// The stream is over: stops both directions and tells every filter, once.
    package func complete() {
        guard !completed else { return }
        completed = true
        abort()
        for f in filters { f.onStreamComplete() }
        // The iterators share the array; once they let go it is unique again, so its
        // capacity survives for a reuse.
        request.releaseFilters()
        response.releaseFilters()
        filters.removeAll(keepingCapacity: true)
    }
}
