import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// A mirrored copy of a request (Envoy's shadow): sent whole to the mirror cluster once the
/// original is complete, its answer read and dropped. It keeps itself alive until the answer
/// ends, fails or its timeout fires, and never touches the stream it was copied from.
final class ShadowRequest: UpstreamResponseHandler, TimerTarget {
    enum State {
        case connecting
        case sent(UpstreamRequest)
        case done
    }

    private var state = State.connecting
    private var selfReference: ShadowRequest?
    private var timer: LoopTimers.Token?
    private let clusterName: String
    private let timers: LoopTimers
    private let stats: LoopStats

    private init(clusterName: String, timers: LoopTimers, stats: LoopStats) {
        self.clusterName = clusterName
        self.timers = timers
        self.stats = stats
    }

    /// Sends `head` (its authority suffixed `-shadow`), `body` and `trailers` to `cluster`;
    /// abandoned after `timeoutMs`.
    static func send(_ head: RequestHead, body: ByteBuffer, trailers: HTTPHeaders?, to cluster: Cluster,
                     client: UpstreamClient, timers: LoopTimers, stats: LoopStats, timeoutMs: Int) {
        let shadow = ShadowRequest(clusterName: cluster.name, timers: timers, stats: stats)
        shadow.selfReference = shadow
        shadow.timer = timers.arm(after: .milliseconds(Int64(timeoutMs)), shadow)
        stats.count("meshd_upstream_rq_mirrored_total{cluster=\"\(cluster.name)\"}")
        var head = head
        head.authority = shadowAuthority(head.authority)
        client.connection(for: cluster) { [shadow] result in
            guard case .connecting = shadow.state else {
                if case .success(let (c, _)) = result { c.onStateChange?() }
                return
            }
            switch result {
            case .success(let (connection, _)):
                guard let request = connection.startStream(handler: shadow) else { return shadow.finish(failed: true) }
                shadow.state = .sent(request)
                let bodyEnds = trailers == nil
                request.sendHead(head, endStream: body.readableBytes == 0 && bodyEnds)
                if body.readableBytes > 0 { request.sendData(body, endStream: bodyEnds) }
                if let trailers { request.sendTrailers(trailers) }
            case .failure:
                shadow.finish(failed: true)
            }
        }
    }

    /// Envoy's rule: `-shadow` goes after the host, before any port ("a:80" → "a-shadow:80").
    static func shadowAuthority(_ authority: String) -> String {
        if let colon = authority.lastIndex(of: ":"), !authority[colon...].contains("]") {
            return authority[..<colon] + "-shadow" + authority[colon...]
        }
        return authority + "-shadow"
    }

    private func finish(failed: Bool) {
        guard !isDone else { return }
        if case .sent(let request) = state, failed { request.cancel() }
        state = .done
        timers.cancel(timer)
        timer = nil
        if failed { stats.count("meshd_upstream_rq_mirror_failed_total{cluster=\"\(clusterName)\"}") }
        selfReference = nil
    }

    private var isDone: Bool {
        if case .done = state { return true }
        return false
    }

    func timerFired(_ token: LoopTimers.Token) {
        guard token == timer else { return }
        timer = nil
        finish(failed: true)
    }

    // MARK: UpstreamResponseHandler — the answer is read and dropped.

    func upstreamHead(_ head: ResponseHead, endStream: Bool) {
        guard !isDone else { return }
        stats.upstreamResponse(cluster: clusterName, code: head.status)
        if endStream { finish(failed: false) }
    }

    func upstreamData(_ data: ByteBuffer, endStream: Bool) {
        if endStream { finish(failed: false) }
    }

    func upstreamTrailers(_ trailers: HTTPHeaders) { finish(failed: false) }

    func upstreamWritabilityChanged(_ writable: Bool) {}

    func upstreamFailed(_ failure: UpstreamFailure) { finish(failed: true) }
}
