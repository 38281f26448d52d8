import LuaRuntime
import Transport
import Logging
import NIOCore
import NIOPosix

/// The gRPC discovery endpoint (Istio's 15010 plain / 15012 TLS): HTTP/2 via meshd's
/// nghttp2 codec, optionally behind meshd's OpenSSL handler.
public final class DiscoveryServer: Sendable {
    private let channel: Channel

    /// - Parameter signer: answers certificate requests on the stream (nil: they are refused).
    public init(group: EventLoopGroup, host: String, port: Int, hub: ProxyHub, tls: TLSServerContext? = nil,
                signer: CertificateSigner? = nil) throws {
        channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(OpenSSLHandler(server: tls)) }
                    let info = ConnectionInfo(remoteAddress: channel.remoteAddress, localAddress: channel.localAddress,
                                              isTLS: tls != nil)
                    var settings = HTTP2ServerSettings()
                    settings.maxConcurrentStreams = 16
                    try sync.addHandler(HTTP2ServerCodec(factory: DiscoveryCallFactory(hub: hub, signer: signer), connectionInfo: info,
                                                         settings: settings))
                }
            }
            .bind(host: host, port: port).wait()
    }

    public var port: Int? { channel.localAddress?.port }

    public func close() { channel.close(promise: nil) }
}
