#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// What a connection refused at accept (its listener or the process is full) gets.
///
/// On a cleartext listener: a complete `503 Service Unavailable` with `connection: close`,
/// written at once without reading the request (nothing is parsed or forwarded), then the
/// write side is shut and the socket closed when the client closes or after `linger`, so
/// the client reads the answer rather than a reset. On a TLS listener, or while
/// `maxAnswering` refusals are already being answered: closed at once, as Envoy does
/// (an answer over TLS would cost a handshake, the work a full proxy must not take on).
final class ConnectionRefusal: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    /// Refusals answered at once; more are closed without a word.
    static let maxAnswering = 64
    static let linger = TimeAmount.seconds(1)
    static let body = "connection limit reached\n"
    static let answer = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: \(body.utf8.count)\r\n"
        + "content-type: text/plain\r\nconnection: close\r\nserver: meshd\r\n\r\n\(body)"

    private let answers: Bool

    init(answer: Bool) {
        self.answers = answer
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { refuse(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        refuse(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // The request is never looked at.
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func refuse(_ context: ChannelHandlerContext) {
        guard answers else { return context.close(promise: nil) }
        let channel = context.channel
        context.writeAndFlush(NIOAny(ByteBuffer(string: Self.answer))).assumeIsolated().whenComplete { _ in
            channel.close(mode: .output, promise: nil)
        }
        context.eventLoop.assumeIsolated().scheduleTask(in: Self.linger) { channel.close(promise: nil) }
    }
}

/// The process-wide budget of downstream connections, from the open-file limit: what is
/// left after a reserve (admin connections, logs, the control-plane stream, the event
/// loops' own descriptors) is halved, since each proxied connection may need an upstream
/// one. Past it new connections are refused, so the admin listener and upstream
/// connections always find a descriptor.
enum ConnectionBudget {
    static let reservedDescriptors = 128

    static var defaultDownstreamLimit: Int {
        var limit = rlimit()
        #if canImport(Glibc)
        let got = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        #else
        let got = getrlimit(RLIMIT_NOFILE, &limit)
        #endif
        // RLIM_INFINITY is all ones.
        guard got == 0, limit.rlim_cur != .max else { return 1 << 20 }
        return max(16, (Int(clamping: limit.rlim_cur) - reservedDescriptors) / 2)
    }
}
