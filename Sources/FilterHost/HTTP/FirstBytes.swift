import MeshAPI
import NIOCore
import Transport

/// What a downstream connection turned out to carry.
enum DownstreamProtocol: Equatable {
    case http1, http2, bytes
}

/// What a listener serves: HTTP (a route config), bytes (`tcpProxy`), or both, chosen per
/// connection (Istio's protocol sniffing; a sidecar inbound listener fronting TCP and HTTP
/// service ports).
enum Carriage: Equatable {
    case http, bytes, sniffed

    init(_ listener: Listener) {
        switch (listener.tcpProxy, listener.routeConfig.isEmpty) {
        case (nil, _): self = .http
        case (_?, true): self = .bytes
        case (_?, false): self = .sniffed
        }
    }

    /// After mesh TLS: the client's ALPN says what it carries (Istio's TCP names: bytes).
    func afterHandshake(alpn: String?) -> DownstreamProtocol {
        switch self {
        case .bytes: return .bytes
        case .sniffed where alpn.map(MeshApplication.bytesALPN.contains) == true: return .bytes
        case .http, .sniffed: return alpn == "h2" ? .http2 : .http1
        }
    }
}

/// Protocol detection from a cleartext connection's first bytes, as Envoy's `http_inspector`:
/// the HTTP/2 connection preface is h2c prior knowledge; when sniffing, an HTTP/1 request
/// line (`METHOD SP target SP HTTP/1.x`) is HTTP/1 and anything else — a TLS ClientHello, a
/// protocol of its own — is bytes. On an HTTP listener everything but the preface is HTTP/1;
/// on a bytes listener everything is bytes.
enum FirstBytes {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    /// Longest method token, and longest request line, looked for.
    static let maxMethodLength = 32
    static let maxRequestLine = 16 * 1024
    private static let version = Array(" HTTP/1.".utf8)

    /// Nil: not enough bytes yet.
    static func classify(_ view: ByteBufferView, on carriage: Carriage) -> DownstreamProtocol? {
        if carriage == .bytes { return .bytes }
        let n = min(view.count, preface.count)
        if view.prefix(n).elementsEqual(preface.prefix(n)) { return n == preface.count ? .http2 : nil }
        guard carriage == .sniffed else { return .http1 }
        return requestLine(view)
    }

    private static func requestLine(_ view: ByteBufferView) -> DownstreamProtocol? {
        var method = 0
        for byte in view.prefix(maxMethodLength + 1) {
            if byte == UInt8(ascii: " ") { break }
            guard HTTP1Syntax.isTokenByte(byte), method < maxMethodLength else { return .bytes }
            method += 1
        }
        guard method > 0 else { return .bytes }
        guard let end = view.firstIndex(of: UInt8(ascii: "\n")) else {
            return view.count > maxRequestLine ? .bytes : nil
        }
        var line = view[view.startIndex..<end]
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        guard line.count > version.count + 1 else { return .bytes }
        let tail = line.suffix(version.count + 1)
        let minor = tail.last!
        return tail.prefix(version.count).elementsEqual(version) && (minor == UInt8(ascii: "0") || minor == UInt8(ascii: "1"))
            ? .http1 : .bytes
    }
}

/// Closes the connection when the client ends its input: what a socket without remote
/// half-closure does on its own.
final class HalfCloseAsClose: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
