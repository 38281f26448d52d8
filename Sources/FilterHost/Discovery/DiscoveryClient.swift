import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import MeshAPI
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOHTTP1
import SwiftProtobuf
import Transport

/// The proxy's side of the discovery stream: subscribes to the control plane, applies each
/// response as a new snapshot and answers ACK or NACK (with the reason). While the control
/// plane is away the proxy keeps serving its last good config and reconnects with backoff.
public final class DiscoveryClient: Sendable {
    static let applyQueue = DispatchQueue(label: "meshd.discovery.apply")

    private let runtime: ProxyRuntime
    private let node: Meshd_Discovery_V1_Node
    private let host: String
    private let port: Int
    private let logger: Logger
    private let eventLoop: EventLoop
    private let state = NIOLockedValueBox(State())

    struct State {
        var resources: [String: ResourceEntry] = [:]
        var acceptedVersion = ""
        var connected = false
        var stopped = false
        var backoffMs = 100
        var lastError: String?
        /// The stream's request side while connected (certificate requests go on it).
        var stream: NIOLoopBound<UpstreamRequest>?
    }

    private let tls: TLSClientContext?
    private let serverName: String?
    /// Asks for this proxy's workload certificate on the stream, and again to rotate it.
    public let certificateAgent: CertificateAgent?

    /// `tls`: connect over TLS (Istio's 15012), verifying the control plane as `serverName`.
    public init(runtime: ProxyRuntime, node: Meshd_Discovery_V1_Node, controlPlane: String, logger: Logger,
                tls: TLSClientContext? = nil, serverName: String? = nil, certificateAgent: CertificateAgent? = nil) throws {
        let parts = controlPlane.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else {
            throw ConfigError(path: "--control-plane", reason: "expected HOST:PORT, got '\(controlPlane)'")
        }
        self.runtime = runtime
        self.node = node
        self.host = String(parts[0])
        self.port = port
        self.logger = logger
        self.eventLoop = runtime.group.next()
        self.tls = tls
        self.serverName = serverName
        self.certificateAgent = certificateAgent
    }

    public var isConnected: Bool { state.withLockedValue { $0.connected } }
    public var acceptedVersion: String { state.withLockedValue { $0.acceptedVersion } }

    /// nil once a config from the control plane is applied, else why the proxy is not ready.
    /// The control plane sends a proxy its first config with the push that registers it, so
    /// that config has the endpoints of every workload registered by then, its own included.
    /// Once ready, a proxy stays ready (it keeps its last good config while the control plane is away).
    public var notReadyReason: String? {
        if let reason = configNotReadyReason { return reason }
        return certificateAgent?.notReadyReason
    }

    private var configNotReadyReason: String? {
        state.withLockedValue { s in
            if !s.acceptedVersion.isEmpty { return nil }
            if let error = s.lastError { return "the control plane's first config was refused: \(error)" }
            if !s.connected { return "not connected to the control plane at \(host):\(port)" }
            return "waiting for the first config from the control plane"
        }
    }

    public func start() {
        eventLoop.execute { self.connect() }
    }

    public func stop() {
        state.withLockedValue { $0.stopped = true }
    }

    private func connect() {
        guard !state.withLockedValue({ $0.stopped }) else { return }
        let loop = eventLoop
        let tls = self.tls, sni = serverName ?? host
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(2))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(OpenSSLHandler(client: tls, serverName: sni)) }
                    try channel.pipeline.syncOperations.addHandler(HTTP2ClientConnection(eventLoop: channel.eventLoop))
                }
            }
            .connect(host: host, port: port)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    do {
                        let h2 = try channel.pipeline.syncOperations.handler(type: HTTP2ClientConnection.self)
                        self.openWhenReady(h2, channel: channel)
                    } catch {
                        channel.close(promise: nil)
                        self.scheduleReconnect("\(error)")
                    }
                case .failure(let error):
                    self.scheduleReconnect("\(error)")
                }
            }
    }

    /// The HTTP/2 session starts on channelActive, just after the connect completes.
    private func openWhenReady(_ connection: HTTP2ClientConnection, channel: Channel) {
        if connection.canStartStream { return open(on: connection, channel: channel) }
        connection.onStateChange = { [unowned connection] in
            if connection.canStartStream {
                connection.onStateChange = nil
                self.open(on: connection, channel: channel)
            } else if connection.isClosed {
                connection.onStateChange = nil
                self.scheduleReconnect("control plane closed the connection")
            }
        }
    }

    private func open(on connection: HTTP2ClientConnection, channel: Channel) {
        let call = DiscoveryCall(client: self, channel: channel)
        guard let request = connection.startStream(handler: call) else {
            channel.close(promise: nil)
            return scheduleReconnect("control plane refused the stream")
        }
        call.request = request
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/grpc")
        headers.add(name: "te", value: "trailers")
        request.sendHead(RequestHead(method: "POST", scheme: tls == nil ? "http" : "https", authority: "\(host):\(port)", path: Discovery.path,
                                     headers: headers, version: .http2), endStream: false)
        let first = state.withLockedValue { s -> Meshd_Discovery_V1_DiscoveryRequest in
            s.connected = true
            s.backoffMs = 100
            // A reconnect starts from scratch: the control plane sends everything again.
            s.resources = [:]
            var r = Meshd_Discovery_V1_DiscoveryRequest()
            r.versionInfo = s.acceptedVersion
            return r
        }
        send(first, on: request)
        state.withLockedValue { $0.stream = NIOLoopBound(request, eventLoop: eventLoop) }
        logger.info("connected to control plane", metadata: ["address": "\(host):\(port)"])
        if certificateAgent?.needsCertificate == true { requestCertificate() }
    }

    /// Sends a CSR on the current stream (on the client's loop); without a stream, the next
    /// connection asks (its `open` sees `needsCertificate`).
    func requestCertificate() {
        eventLoop.execute {
            guard let agent = self.certificateAgent, let stream = self.state.withLockedValue({ $0.stream }) else { return }
            var message = Meshd_Discovery_V1_DiscoveryRequest()
            do {
                guard let request = try agent.makeRequest() else { return }  // one is in flight
                message.certificateRequest = request
            } catch {
                self.logger.error("cannot make a certificate request", metadata: ["error": "\(error)"])
                return self.scheduleCertificateRequest(in: 5)
            }
            message.node = self.node
            message.typeURL = Discovery.certificateTypeURL
            guard let bytes: [UInt8] = try? message.serializedBytes() else { return }
            stream.value.sendData(GRPCFrame.frame(bytes), endStream: false)
        }
    }

    /// A certificate answer: installed off the loop (it builds TLS contexts), then the next
    /// request is scheduled at the rotation time.
    func certificateArrived(_ response: Meshd_Discovery_V1_CertificateResponse) {
        guard let agent = certificateAgent else { return }
        DiscoveryClient.applyQueue.async {
            let wait = agent.received(response)
            self.scheduleCertificateRequest(in: wait)
        }
    }

    private func scheduleCertificateRequest(in seconds: TimeInterval) {
        eventLoop.scheduleTask(in: .milliseconds(Int64(seconds * 1000))) {
            guard !self.state.withLockedValue({ $0.stopped }), self.certificateAgent?.needsCertificate == true else { return }
            self.requestCertificate()
        }
    }

    func send(_ message: Meshd_Discovery_V1_DiscoveryRequest, on request: UpstreamRequest) {
        var m = message
        m.node = node
        m.typeURL = Discovery.typeURL
        guard let bytes: [UInt8] = try? m.serializedBytes() else { return }
        request.sendData(GRPCFrame.frame(bytes), endStream: false)
    }

    /// Applies one response and builds the ACK or NACK that answers it.
    func handle(_ response: Meshd_Discovery_V1_DiscoveryResponse) -> Meshd_Discovery_V1_DiscoveryRequest {
        var next = state.withLockedValue { $0.resources }
        if !response.incremental { next = [:] }
        for r in response.resources { next[r.name] = ResourceEntry(name: r.name, version: r.version, body: Array(r.body)) }
        for name in response.removedResources { next.removeValue(forKey: name) }
        var reply = Meshd_Discovery_V1_DiscoveryRequest()
        reply.responseNonce = response.nonce
        let outcome: Result<Int, ConfigError>
        do {
            var bootstrap = try ResourceCodec.bootstrap(from: next)
            // The proxy's own parts: the control plane sends neither.
            bootstrap.admin = runtime.snapshot.bootstrap.admin
            bootstrap.overloadManager = runtime.snapshot.bootstrap.overloadManager
            outcome = runtime.apply(bootstrap)
        } catch {
            outcome = runtime.refuseExternally(ConfigError(path: "", reason: "\(error)"))
        }
        switch outcome {
        case .success:
            reply.versionInfo = response.versionInfo
            state.withLockedValue {
                $0.resources = next
                $0.acceptedVersion = response.versionInfo
                $0.lastError = nil
            }
        case .failure(let error):
            reply.versionInfo = state.withLockedValue { $0.acceptedVersion }
            reply.errorDetail.code = Int32(GRPCStatusCode.invalidArgument.rawValue)
            reply.errorDetail.message = error.description
            state.withLockedValue { $0.lastError = error.description }
            logger.error("refused config from control plane (NACK)", metadata: ["version": "\(response.versionInfo)", "reason": "\(error.description)"])
        }
        return reply
    }

    func disconnected(_ why: String) {
        state.withLockedValue {
            $0.connected = false
            $0.stream = nil
        }
        scheduleReconnect(why)
    }

    private func scheduleReconnect(_ why: String) {
        let delay = state.withLockedValue { s -> Int in
            s.connected = false
            s.stream = nil
            let d = s.backoffMs
            s.backoffMs = min(5_000, s.backoffMs * 2)
            return d + Int.random(in: 0...(d / 4 + 1))
        }
        guard !state.withLockedValue({ $0.stopped }) else { return }
        logger.warning("control plane unavailable; keeping the last good config", metadata: ["reason": "\(why)", "retry_ms": "\(delay)"])
        eventLoop.scheduleTask(in: .milliseconds(Int64(delay))) { self.connect() }
    }
}

/// One gRPC call on the discovery stream: frames in, ACK/NACK out.
final class DiscoveryCall: UpstreamResponseHandler {
    private let client: DiscoveryClient
    private let channel: Channel
    var request: UpstreamRequest?
    private var decoder = GRPCFrameDecoder()
    private var ended = false

    init(client: DiscoveryClient, channel: Channel) {
        self.client = client
        self.channel = channel
    }

    func upstreamHead(_ head: ResponseHead, endStream: Bool) {
        if head.status != 200 || endStream { finish("control plane answered \(head.status) \(head.headers.first(name: "grpc-message") ?? "")") }
    }

    func upstreamData(_ data: ByteBuffer, endStream: Bool) {
        decoder.append(data)
        do {
            while let message = try decoder.next() {
                let response = try Meshd_Discovery_V1_DiscoveryResponse(serializedBytes: Array(buffer: message))
                if response.typeURL == Discovery.certificateTypeURL {
                    client.certificateArrived(response.certificate)
                    continue
                }
                // Applying may bind listeners (a blocking wait), so it runs off the event loop,
                // in order; the ACK/NACK goes back on the loop.
                guard let request else { continue }
                let loop = channel.eventLoop
                let bound = NIOLoopBound(request, eventLoop: loop)
                let client = self.client
                DiscoveryClient.applyQueue.async {
                    let reply = client.handle(response)
                    loop.execute { client.send(reply, on: bound.value) }
                }
            }
        } catch {
            return finish("bad message from control plane: \(error)")
        }
        if endStream { finish("control plane closed the stream") }
    }

    func upstreamTrailers(_ trailers: HTTPHeaders) {
        finish("control plane ended the stream: grpc-status \(trailers.first(name: "grpc-status") ?? "?") \(trailers.first(name: "grpc-message") ?? "")")
    }

    func upstreamWritabilityChanged(_ writable: Bool) {}

    func upstreamFailed(_ failure: UpstreamFailure) {
        finish("\(failure)")
    }

    private func finish(_ why: String) {
        guard !ended else { return }
        ended = true
        channel.close(promise: nil)
        client.disconnected(why)
    }
}
