import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// One request a filter makes to a cluster on its own behalf (Lua's `httpCall()`, an
/// external authorization check): sent through the loop's upstream pools, its response
/// collected whole up to a limit, bounded by a timeout. The answer never comes back from
/// inside `start`: one known at once (no endpoints) is handed over on the next loop tick.
public final class HTTPCallout: UpstreamResponseHandler, TimerTarget {
    /// Why a callout got no usable answer (Envoy answers each the same way: a failure).
    public enum Failure: Error, Equatable {
        case noConnection, reset, timeout, bodyOverLimit
    }

    public typealias Completion = (Result<(ResponseHead, ByteBuffer), Failure>) -> Void

    private enum State {
        case idle
        case connecting
        case sent(UpstreamRequest)
        case finished
    }

    private let eventLoop: EventLoop
    private let timers: LoopTimers
    private let bodyLimit: Int
    private var completion: Completion?
    private var state = State.idle
    private var timeout: LoopTimers.Token?
    private var head: ResponseHead?
    private var body = ByteBuffer()
    private var starting = false

    public init(eventLoop: EventLoop, timers: LoopTimers, bodyLimit: Int, completion: @escaping Completion) {
        self.eventLoop = eventLoop
        self.timers = timers
        self.bodyLimit = bodyLimit
        self.completion = completion
    }

    /// Sends `request` (and `body`, when not empty) to `cluster`; `timeoutMs` 0 waits forever.
    public func start(cluster: Cluster, request: RequestHead, body requestBody: ByteBuffer?, timeoutMs: Int,
                      upstream client: UpstreamClient) {
        starting = true
        defer { starting = false }
        state = .connecting
        if timeoutMs > 0 { timeout = timers.arm(after: .milliseconds(Int64(timeoutMs)), self) }
        client.connection(for: cluster) { result in
            guard case .connecting = self.state else {
                // Answered (timed out) or abandoned meanwhile: hand the connection back unused.
                if case .success(let (c, _)) = result { c.onStateChange?() }
                return
            }
            switch result {
            case .success(let (connection, _)):
                guard let stream = connection.startStream(handler: self) else { return self.finish(.failure(.noConnection)) }
                self.state = .sent(stream)
                let hasBody = (requestBody?.readableBytes ?? 0) > 0
                stream.sendHead(request, endStream: !hasBody)
                if hasBody, let requestBody { stream.sendData(requestBody, endStream: true) }
            case .failure:
                self.finish(.failure(.noConnection))
            }
        }
    }

    /// The caller went away: drop the request; the completion is not called.
    public func cancel() {
        completion = nil
        if case .sent(let stream) = state { stream.cancel() }
        state = .finished
        timers.cancel(timeout)
        timeout = nil
    }

    // MARK: UpstreamResponseHandler

    public func upstreamHead(_ head: ResponseHead, endStream: Bool) {
        self.head = head
        if endStream { complete() }
    }

    public func upstreamData(_ data: ByteBuffer, endStream: Bool) {
        guard case .sent(let stream) = state else { return }
        guard body.readableBytes + data.readableBytes <= bodyLimit else {
            stream.cancel()
            return finish(.failure(.bodyOverLimit))
        }
        var data = data
        body.writeBuffer(&data)
        if endStream { complete() }
    }

    public func upstreamTrailers(_ trailers: HTTPHeaders) { complete() }

    public func upstreamWritabilityChanged(_ writable: Bool) {}

    public func upstreamFailed(_ failure: UpstreamFailure) { finish(.failure(.reset)) }

    public func timerFired(_ token: LoopTimers.Token) {
        guard token == timeout else { return }
        timeout = nil
        if case .sent(let stream) = state { stream.cancel() }
        finish(.failure(.timeout))
    }

    // MARK: answering

    private func complete() {
        guard let head else { return finish(.failure(.reset)) }
        finish(.success((head, body)))
    }

    private func finish(_ result: Result<(ResponseHead, ByteBuffer), Failure>) {
        if case .finished = state { return }
        state = .finished
        timers.cancel(timeout)
        timeout = nil
        guard let completion else { return }
        self.completion = nil
        if starting {
            eventLoop.assumeIsolated().execute { completion(result) }
        } else {
            completion(result)
        }
    }
}
