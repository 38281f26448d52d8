import LuaRuntime
import Transport
import MeshAPI
import NIOCore
import NIOHTTP1
import SwiftProtobuf

/// One gRPC call on the discovery server, riding meshd's own HTTP/2 codec: request frames
/// in, response frames out, status in trailers. Lives on its connection's loop.
final class DiscoveryServerCall: DownstreamStreamEvents {
    private let downstream: DownstreamStream
    private let hub: ProxyHub
    private let signer: CertificateSigner?
    private var decoder = GRPCFrameDecoder(maxMessageBytes: 4 << 20)
    private var open = false
    private var finished = false

    init(downstream: DownstreamStream, hub: ProxyHub, signer: CertificateSigner?) {
        self.downstream = downstream
        self.hub = hub
        self.signer = signer
    }

    var eventLoop: EventLoop { downstream.eventLoop }

    func receiveHead(_ head: RequestHead, endStream: Bool) {
        guard head.method == "POST", head.path == Discovery.path else {
            return fail(.unimplemented, "unknown method \(head.path)")
        }
        guard head.headers.first(name: "content-type")?.hasPrefix("application/grpc") == true else {
            return fail(.invalidArgument, "content-type must be application/grpc")
        }
        open = true
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/grpc")
        downstream.sendResponseHead(ResponseHead(status: 200, headers: headers), endStream: false)
    }

    func receiveData(_ data: ByteBuffer, endStream: Bool) {
        guard open else { return }
        decoder.append(data)
        do {
            while let message = try decoder.next() {
                let request = try Meshd_Discovery_V1_DiscoveryRequest(serializedBytes: Array(buffer: message))
                if request.typeURL == Discovery.certificateTypeURL {
                    answerCertificateRequest(request)
                } else {
                    hub.received(request, on: self)
                }
            }
        } catch {
            return end(.invalidArgument, "\(error)")
        }
        if endStream { end(.ok, "") }
    }

    func receiveTrailers(_ trailers: HTTPHeaders) { end(.ok, "") }
    func streamWritabilityChanged(_ writable: Bool) {}

    func downstreamReset() {
        guard !finished else { return }
        finished = true
        hub.closed(self)
    }

    /// A CSR on the stream: signed (or refused with the reason) and answered on the same stream.
    private func answerCertificateRequest(_ request: Meshd_Discovery_V1_DiscoveryRequest) {
        var response = Meshd_Discovery_V1_DiscoveryResponse()
        response.typeURL = Discovery.certificateTypeURL
        response.nonce = request.responseNonce
        if let signer {
            response.certificate = signer.respond(request.certificateRequest, node: request.node)
        } else {
            response.certificate.error.code = Int32(GRPCStatusCode.unimplemented.rawValue)
            response.certificate.error.message = "this control plane has no CA"
        }
        guard let bytes: [UInt8] = try? response.serializedBytes() else { return }
        send([GRPCFrame.frame(bytes)])
    }

    /// Sends the pieces of one gRPC message (prefix included), in order.
    func send(_ parts: [ByteBuffer]) {
        guard open, !finished else { return }
        for part in parts { downstream.sendResponseData(part, endStream: false) }
    }

    private func end(_ code: GRPCStatusCode, _ message: String) {
        guard !finished else { return }
        finished = true
        hub.closed(self)
        var trailers = HTTPHeaders()
        trailers.add(name: "grpc-status", value: String(code.rawValue))
        if !message.isEmpty { trailers.add(name: "grpc-message", value: message) }
        downstream.sendResponseTrailers(trailers)
    }

    /// A trailers-only response: the call fails before it starts.
    private func fail(_ code: GRPCStatusCode, _ message: String) {
        finished = true
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/grpc")
        headers.add(name: "grpc-status", value: String(code.rawValue))
        headers.add(name: "grpc-message", value: message)
        downstream.sendResponseHead(ResponseHead(status: 200, headers: headers), endStream: true)
    }
}

/// Hands each HTTP/2 stream of a discovery connection to a new call.
final class DiscoveryCallFactory: DownstreamStreamFactory {
    private let hub: ProxyHub
    private let signer: CertificateSigner?

    init(hub: ProxyHub, signer: CertificateSigner?) {
        self.hub = hub
        self.signer = signer
    }

    func makeStream(downstream: DownstreamStream) -> DownstreamStreamEvents {
        DiscoveryServerCall(downstream: downstream, hub: hub, signer: signer)
    }
}
