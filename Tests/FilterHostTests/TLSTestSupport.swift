import FilterHost
import Foundation
import NIOCore
import NIOPosix
import XCTest
import Transport
import LuaRuntime
import Filters
import PluginTesting

/// Runs a program found on PATH and returns its exit status and output.
func runProcess(_ arguments: [String], input: String? = nil) throws -> (status: Int32, output: String, error: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let output = Pipe()
    let error = Pipe()
    process.standardOutput = output
    process.standardError = error
    let stdin = Pipe()
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try stdin.fileHandleForWriting.close()
    let outData = output.fileHandleForReading.readDataToEndOfFile()
    let errData = error.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

struct TestCertificate {
    let certificate: String
    let key: String
}

/// A temporary directory holding self-signed certificates made with the openssl CLI.
final class TLSTestDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "meshd-tls-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func makeSelfSigned(name: String, commonName: String = "localhost") throws -> TestCertificate {
        let cert = TestCertificate(certificate: "\(path)/\(name).crt", key: "\(path)/\(name).key")
        let result = try runProcess([
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", "/CN=\(commonName)", "-addext", "subjectAltName=DNS:\(commonName),IP:127.0.0.1",
            "-days", "2", "-keyout", cert.key, "-out", cert.certificate,
        ])
        guard result.status == 0 else {
            throw TLSError("openssl req failed: \(result.error)")
        }
        return cert
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// What the server side saw, collected across connections and threads.
final class ServerEvents: @unchecked Sendable {
    private let lock = NSLock()
    private var _handshakes: [TLSHandshakeCompleted] = []
    private var _errors: [Error] = []
    private var _peerCertificates: [Bool] = []
    private var _closedConnections = 0

    var handshakes: [TLSHandshakeCompleted] { lock.withLock { _handshakes } }
    var errors: [Error] { lock.withLock { _errors } }
    var peerCertificates: [Bool] { lock.withLock { _peerCertificates } }
    var closedConnections: Int { lock.withLock { _closedConnections } }

    func record(handshake: TLSHandshakeCompleted, peerCertificate: Bool) {
        lock.withLock {
            _handshakes.append(handshake)
            _peerCertificates.append(peerCertificate)
        }
    }

    func record(error: Error) { lock.withLock { _errors.append(error) } }

    func recordClose() { lock.withLock { _closedConnections += 1 } }

    /// Polls until `condition` holds or the timeout passes.
    func waitUntil(timeout: TimeInterval = 10, _ condition: (ServerEvents) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition(self) { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return condition(self)
    }
}

/// Sits behind the server's OpenSSLHandler and records its events.
final class ServerEventRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let events: ServerEvents

    init(events: ServerEvents) { self.events = events }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let handshake = event as? TLSHandshakeCompleted {
            let tls = try? context.pipeline.syncOperations.handler(type: OpenSSLHandler.self)
            XCTAssertEqual(tls?.negotiatedProtocol, handshake.negotiatedProtocol)
            events.record(handshake: handshake, peerCertificate: tls?.peerCertificatePresented ?? false)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        events.record(error: error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        events.recordClose()
        context.fireChannelInactive()
    }
}

/// Echoes every byte back.
final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }
}

/// Answers one fixed HTTP/1.1 response once the request head has arrived, then closes.
final class FixedHTTPResponder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var request = ""
    private var answered = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        request += buffer.readString(length: buffer.readableBytes) ?? ""
        guard !answered, request.contains("\r\n\r\n") else { return }
        answered = true
        let response = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: response)), promise: nil)
        context.close(promise: nil)
    }
}

/// A TLS server on 127.0.0.1 with one event loop; `stop()` shuts everything down.
final class TLSTestServer {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let events = ServerEvents()
    private(set) var channel: Channel?

    var port: Int { channel?.localAddress?.port ?? 0 }

    /// - Parameter allowHalfClosure: a bare TCP FIN then leaves the connection open, so only
    ///   a TLS close_notify closes it.
    init(context: TLSServerContext, allowHalfClosure: Bool = false,
         application: @escaping @Sendable () -> ChannelHandler) throws {
        let events = self.events
        do {
            channel = try ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.allowRemoteHalfClosure, value: allowHalfClosure)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(OpenSSLHandler(server: context))
                        try sync.addHandler(application())
                        try sync.addHandler(ServerEventRecorder(events: events))
                    }
                }
                .bind(host: "127.0.0.1", port: 0).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
    }

    func stop() throws {
        try channel?.close().wait()
        try group.syncShutdownGracefully()
    }
}

/// Collects what a client receives and its handshake event.
final class ClientCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let expectedBytes: Int
    private var received: ByteBuffer?
    let data: EventLoopPromise<ByteBuffer>
    let handshake: EventLoopPromise<TLSHandshakeCompleted>

    init(expectedBytes: Int, data: EventLoopPromise<ByteBuffer>, handshake: EventLoopPromise<TLSHandshakeCompleted>) {
        self.expectedBytes = expectedBytes
        self.data = data
        self.handshake = handshake
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if received == nil { received = buffer } else { received!.writeBuffer(&buffer) }
        if let received, received.readableBytes >= expectedBytes { self.data.succeed(received) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSHandshakeCompleted { handshake.succeed(event) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        handshake.fail(error)
        data.fail(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshake.fail(ChannelError.eof)
        data.fail(ChannelError.eof)
    }
}

struct TestTimeout: Error {}

/// Waits for `future`, failing after `timeout` instead of hanging the test run.
func waitFor<T: Sendable>(_ future: EventLoopFuture<T>, timeout: TimeAmount = .seconds(10)) throws -> T {
    let promise = future.eventLoop.makePromise(of: T.self)
    future.cascade(to: promise)
    let timer = future.eventLoop.scheduleTask(in: timeout) { promise.fail(TestTimeout()) }
    defer { timer.cancel() }
    return try promise.futureResult.wait()
}

/// A connected test client and what it will receive.
struct TLSTestClient {
    let channel: Channel
    let data: EventLoopFuture<ByteBuffer>
    let handshake: EventLoopFuture<TLSHandshakeCompleted>
}

/// Connects to 127.0.0.1:`port`, over TLS when `context` is set, else in plaintext.
func connectTestClient(group: EventLoopGroup, port: Int, context: TLSClientContext?,
                       serverName: String? = "localhost", expectedBytes: Int) throws -> TLSTestClient {
    let loop = group.next()
    let data = loop.makePromise(of: ByteBuffer.self)
    let handshake = loop.makePromise(of: TLSHandshakeCompleted.self)
    let channel = try ClientBootstrap(group: loop)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                let sync = channel.pipeline.syncOperations
                if let context {
                    try sync.addHandler(OpenSSLHandler(client: context, serverName: serverName))
                }
                try sync.addHandler(ClientCollector(expectedBytes: expectedBytes, data: data, handshake: handshake))
            }
        }
        .connect(host: "127.0.0.1", port: port).wait()
    return TLSTestClient(channel: channel, data: data.futureResult, handshake: handshake.futureResult)
}
