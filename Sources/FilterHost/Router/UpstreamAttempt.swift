import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// What an attempt tells the router that owns it. All calls happen on the stream's loop.
protocol UpstreamAttemptOwner: AnyObject {
    /// The request head went out on `host`: the request body may flow now.
    func attemptStarted(_ attempt: UpstreamAttempt, host: String)
    func attemptResponseHead(_ head: ResponseHead, endStream: Bool)
    func attemptResponseData(_ data: ByteBuffer, endStream: Bool)
    func attemptResponseTrailers(_ trailers: HTTPHeaders)
    func attemptWritabilityChanged(_ writable: Bool)
    /// The attempt ended without a complete response; `responseStarted` says whether any of
    /// it reached the owner (only then is a retry impossible).
    func attemptFailed(_ attempt: UpstreamAttempt, _ failure: UpstreamFailure, responseStarted: Bool)
}

/// One try of a request upstream: get a connection from the cluster's pools, send the head,
/// stream the body, relay the response. Its lifecycle is an explicit state, so the router
/// can tell whether a failed attempt may be replaced by another (a retry policy adds
/// attempts; it never reuses one).
final class UpstreamAttempt: UpstreamResponseHandler {
    enum State {
        /// Waiting for a connection from the pool.
        case connecting
        /// The head went out; the response has not started.
        case awaitingResponse(UpstreamRequest)
        /// Response headers came back; data may follow.
        case responding(UpstreamRequest)
        /// The whole response came back.
        case complete
        /// Ended early: by failure, or cancelled by the router.
        case ended
    }

    private(set) var state = State.connecting {
        didSet { if isOver { releaseRequestSlot() } }
    }
    /// The cluster whose `requests` circuit breaker this attempt holds, from the connection to the end.
    private var heldRequestSlot: String?
    private unowned let owner: UpstreamAttemptOwner
    /// The endpoint the pool picked ("address:port"), when it said; a retry avoids it.
    private(set) var pickedHost: String?

    init(owner: UpstreamAttemptOwner) { self.owner = owner }

    deinit { releaseRequestSlot() }

    private func releaseRequestSlot() {
        guard let name = heldRequestSlot else { return }
        heldRequestSlot = nil
        CircuitBreakers.shared.release(.requests, of: name)
    }

    /// The request in flight, while there is one.
    var request: UpstreamRequest? {
        switch state {
        case .awaitingResponse(let r), .responding(let r): return r
        case .connecting, .complete, .ended: return nil
        }
    }

    var responseStarted: Bool {
        if case .responding = state { return true }
        if case .complete = state { return true }
        return false
    }

    var isOver: Bool {
        switch state {
        case .complete, .ended: return true
        case .connecting, .awaitingResponse, .responding: return false
        }
    }

    /// What goes out once a connection is there; kept here so the pool's callback captures
    /// the attempt alone (a closure over the cluster and head copied both into a box per request).
    /// Of the cluster, only what the `max_requests` breaker needs: a copy of the whole
    /// config retained each of its fields per request.
    private var pending: (cluster: String, maxRequests: Int, head: RequestHead, endStream: Bool)?

    func start(cluster: Cluster, head: RequestHead, endStream: Bool, avoiding: Set<String> = [],
               excludingPriorities: Set<Int> = [], hash: UInt64? = nil, client: UpstreamClient) {
        pending = (cluster.name, CircuitBreakers.Resource.requests.limit(of: cluster), head, endStream)
        // Held strongly until the pool answers: a cancelled attempt is still `.ended` then,
        // and hands the connection back (no weak reference, whose side table is an allocation).
        pickedHost = client.connection(for: cluster, avoiding: avoiding, excludingPriorities: excludingPriorities,
                                       hash: hash) { result in
            self.connectionResult(result)
        }
    }

    private func connectionResult(_ result: Result<(UpstreamConnection, String), UpstreamFailure>) {
        guard case .connecting = state, let (cluster, maxRequests, head, endStream) = pending else {
            // Cancelled meanwhile: hand the connection back unused.
            if case .success(let (c, _)) = result { c.onStateChange?() }
            return
        }
        pending = nil
        switch result {
        case .success(let (connection, host)):
            pickedHost = host
            // Envoy checks its `max_requests` breaker when a request gets its connection.
            guard CircuitBreakers.shared.tryAcquire(.requests, of: cluster, limit: maxRequests) else {
                connection.onStateChange?()  // hand it back unused
                return fail(.overflow("requests"))
            }
            heldRequestSlot = cluster
            guard let request = connection.startStream(handler: self) else {
                return fail(.connectFailure("connection could not take a stream"))
            }
            state = .awaitingResponse(request)
            request.sendHead(head, endStream: endStream)
            owner.attemptStarted(self, host: host)
        case .failure(let failure):
            fail(failure)
        }
    }

    /// The router gives up on this attempt (timeout, client gone, local reply).
    func cancel() {
        let inFlight = request
        pending = nil
        if !isOver { state = .ended }
        inFlight?.cancel()
    }

    private func fail(_ failure: UpstreamFailure) {
        guard !isOver else { return }
        let started = responseStarted
        state = .ended
        owner.attemptFailed(self, failure, responseStarted: started)
    }

    // MARK: UpstreamResponseHandler

    func upstreamHead(_ head: ResponseHead, endStream: Bool) {
        guard let request else { return }
        state = endStream ? .complete : .responding(request)
        owner.attemptResponseHead(head, endStream: endStream)
    }

    func upstreamData(_ data: ByteBuffer, endStream: Bool) {
        guard case .responding = state else { return }
        if endStream { state = .complete }
        owner.attemptResponseData(data, endStream: endStream)
    }

    func upstreamTrailers(_ trailers: HTTPHeaders) {
        guard case .responding = state else { return }
        state = .complete
        owner.attemptResponseTrailers(trailers)
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        guard request != nil else { return }
        owner.attemptWritabilityChanged(writable)
    }

    func upstreamFailed(_ failure: UpstreamFailure) { fail(failure) }
}
