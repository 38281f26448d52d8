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
    private var request: FilterIterator<RequestDirection>
    private var response: FilterIterator<ResponseDirection>
    /// The client end, kept to run a local reply through the response filters.
    private let client: FilterSink<ResponseHead>
    private var completed = false

    /// `upstream`: where requests go after the last filter; `client`: where responses go
    /// after the first. Their `overflow`/`pressure` are the owner's answers for each side.
    package init(filters: [HTTPFilter], bufferLimit: Int, upstream: FilterSink<RequestHead>,
                 client: FilterSink<ResponseHead>) {
        self.filters = filters
        self.client = client
        request = FilterIterator(filters: filters, bufferLimit: bufferLimit, sink: upstream)
        response = FilterIterator(filters: filters.reversed(), bufferLimit: bufferLimit, sink: client)
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
        let start = filter.flatMap { f in filters.reversed().firstIndex { $0 === f }.map { $0 + 1 } } ?? 0
        var sink = client
        sink.overflow = {}
        sink.pressure = { _ in }
        response = FilterIterator(filters: filters.reversed(), bufferLimit: Int.max, sink: sink)
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
        filters.removeAll()
    }
}
