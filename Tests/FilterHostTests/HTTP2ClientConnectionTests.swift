import NIOCore
import NIOHTTP1
import NIOPosix
import XCTest
import Transport
import LuaRuntime
import Filters
import PluginTesting
@testable import FilterHost

struct CollectedResponse: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: ByteBuffer
    var trailers: HTTPHeaders?
}

/// Gathers one upstream response and completes `promise` with it (or its failure).
final class ResponseCollector: UpstreamResponseHandler {
    private let promise: EventLoopPromise<CollectedResponse>
    private var response = CollectedResponse(status: 0, headers: [:], body: ByteBuffer(), trailers: nil)
    private var done = false

    init(promise: EventLoopPromise<CollectedResponse>) { self.promise = promise }

    func upstreamHead(_ head: ResponseHead, endStream: Bool) {
        response.status = head.status
        response.headers = head.headers
        if endStream { finish() }
    }

    func upstreamData(_ data: ByteBuffer, endStream: Bool) {
        response.body.writeImmutableBuffer(data)
        if endStream { finish() }
    }

    func upstreamTrailers(_ trailers: HTTPHeaders) {
        response.trailers = trailers
        finish()
    }

    func upstreamWritabilityChanged(_ writable: Bool) {}

    func upstreamFailed(_ failure: UpstreamFailure) {
        XCTAssertFalse(done, "upstreamFailed after a complete response")
        done = true
        promise.fail(failure)
    }

    private func finish() {
        XCTAssertFalse(done, "response completed twice")
        done = true
        promise.succeed(response)
    }
}

/// HTTP2ClientConnection against the HTTP2ServerCodec echo server (and a rude raw server).
final class HTTP2ClientConnectionTests: XCTestCase {
    private var server: EchoServer!
    private var group: MultiThreadedEventLoopGroup!

    override func setUpWithError() throws {
        server = try EchoServer()
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() {
        try? group?.syncShutdownGracefully()
        group = nil
        server?.stop()
        server = nil
    }

    private func connect(port: Int) throws -> (Channel, NIOLoopBound<HTTP2ClientConnection>) {
        let channel = try ClientBootstrap(group: group)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(HTTP2ClientConnection(eventLoop: channel.eventLoop))
                }
            }
            .connect(host: "127.0.0.1", port: port).wait()
        let connection = try channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: HTTP2ClientConnection.self),
                         eventLoop: channel.eventLoop)
        }.wait()
        return (channel, connection)
    }

    private static func head(_ path: String, method: String = "POST") -> RequestHead {
        RequestHead(method: method, scheme: "http", authority: "127.0.0.1", path: path,
                    headers: ["content-type": "application/octet-stream", "connection": "keep-alive"],
                    version: .http2)
    }

    private static func body(size: Int, seed: Int) -> ByteBuffer {
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { storage, count in
            for index in 0..<size { storage[index] = UInt8(truncatingIfNeeded: index &* 31 &+ seed) }
            count = size
        }
        return ByteBuffer(bytes: bytes)
    }

    /// Waits for all, failing whatever is still pending after `seconds`.
    private func waitAll(_ promises: [EventLoopPromise<CollectedResponse>], on loop: EventLoop,
                         seconds: Int64 = 30) throws -> [Result<CollectedResponse, Error>] {
        let timeout = loop.scheduleTask(in: .seconds(seconds)) {
            for promise in promises { promise.fail(ChannelError.ioOnClosedChannel) }
        }
        defer { timeout.cancel() }
        return try EventLoopFuture.whenAllComplete(promises.map(\.futureResult), on: loop).wait()
    }

    func testFiftyConcurrentStreamsEchoBodies() throws {
        let (channel, connection) = try connect(port: server.port)
        defer { try? channel.close().wait() }
        let loop = channel.eventLoop
        let promises = try loop.submit { () -> [EventLoopPromise<CollectedResponse>] in
            var promises: [EventLoopPromise<CollectedResponse>] = []
            for index in 0..<50 {
                let promise = loop.makePromise(of: CollectedResponse.self)
                promises.append(promise)
                guard let request = connection.value.startStream(handler: ResponseCollector(promise: promise)) else {
                    promise.fail(ChannelError.inappropriateOperationForState)
                    continue
                }
                request.sendHead(Self.head("/s\(index)"), endStream: false)
                var body = Self.body(size: 40_000 + index * 1_000, seed: index)
                let first = body.readSlice(length: 10_000)!
                request.sendData(first, endStream: false)
                if index % 5 == 0 {
                    request.sendData(body, endStream: false)
                    request.sendTrailers(["x-checksum": "none"])
                } else {
                    request.sendData(body, endStream: true)
                }
            }
            return promises
        }.wait()
        let results = try waitAll(promises, on: loop)
        for (index, result) in results.enumerated() {
            let response = try result.get()
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.headers.first(name: "x-echo-path"), "/s\(index)")
            XCTAssertEqual(response.body, Self.body(size: 40_000 + index * 1_000, seed: index), "stream \(index)")
        }
        let canStart = try loop.submit { connection.value.canStartStream }.wait()
        XCTAssertTrue(canStart)
    }

    func testTrailersAndStreamReset() throws {
        let (channel, connection) = try connect(port: server.port)
        defer { try? channel.close().wait() }
        let loop = channel.eventLoop
        let promises = try loop.submit { () -> [EventLoopPromise<CollectedResponse>] in
            ["/trailers", "/reset"].map { path in
                let promise = loop.makePromise(of: CollectedResponse.self)
                let request = connection.value.startStream(handler: ResponseCollector(promise: promise))
                request?.sendHead(Self.head(path, method: "GET"), endStream: true)
                return promise
            }
        }.wait()
        let results = try waitAll(promises, on: loop)
        let trailers = try results[0].get()
        XCTAssertEqual(String(buffer: trailers.body), "hi")
        XCTAssertEqual(trailers.trailers?.first(name: "grpc-status"), "0")
        XCTAssertThrowsError(try results[1].get()) { error in
            guard case .reset = error as? UpstreamFailure else { return XCTFail("unexpected \(error)") }
        }
    }

    /// Response reading paused: both flow-control windows close; unpausing completes the echo.
    func testPausedResponseReadingResumes() throws {
        let (channel, connection) = try connect(port: server.port)
        defer { try? channel.close().wait() }
        let loop = channel.eventLoop
        let size = 3 << 20
        let (promise, request) = try loop.submit { () -> (EventLoopPromise<CollectedResponse>, NIOLoopBound<UpstreamRequest>) in
            let promise = loop.makePromise(of: CollectedResponse.self)
            let request = connection.value.startStream(handler: ResponseCollector(promise: promise))!
            request.setResponseReadingPaused(true)
            request.sendHead(Self.head("/big"), endStream: false)
            request.sendData(Self.body(size: size, seed: 7), endStream: true)
            return (promise, NIOLoopBound(request, eventLoop: loop))
        }.wait()
        usleep(300_000)
        try loop.submit {
            XCTAssertFalse(request.value.isWritable, "the request body should be stuck behind closed windows")
            request.value.setResponseReadingPaused(false)
        }.wait()
        let response = try waitAll([promise], on: loop)[0].get()
        XCTAssertEqual(response.body.readableBytes, size)
        XCTAssertEqual(response.body, Self.body(size: size, seed: 7))
    }

    func testGracefulShutdownClosesAfterResponse() throws {
        let (channel, connection) = try connect(port: server.port)
        defer { try? channel.close().wait() }
        let loop = channel.eventLoop
        let promise = try loop.submit { () -> EventLoopPromise<CollectedResponse> in
            let promise = loop.makePromise(of: CollectedResponse.self)
            connection.value.startStream(handler: ResponseCollector(promise: promise))?
                .sendHead(Self.head("/shutdown", method: "GET"), endStream: true)
            return promise
        }.wait()
        XCTAssertEqual(try waitAll([promise], on: loop)[0].get().status, 200)
        let guardClose = loop.scheduleTask(in: .seconds(10)) { channel.close(promise: nil) }
        let started = NIODeadline.now()
        try channel.closeFuture.wait()
        guardClose.cancel()
        XCTAssertLessThan(NIODeadline.now() - started, .seconds(5), "server did not close after GOAWAY")
        let state = try loop.submit { (connection.value.isClosed, connection.value.canStartStream) }.wait()
        XCTAssertTrue(state.0)
        XCTAssertFalse(state.1)
    }

    /// Client cancel (RST_STREAM) and connection loss both reach the engine as downstreamReset.
    func testClientCancelAndDisconnectResetDownstream() throws {
        let (channel, connection) = try connect(port: server.port)
        let loop = channel.eventLoop
        let request = try loop.submit { () -> NIOLoopBound<UpstreamRequest> in
            let promise = loop.makePromise(of: CollectedResponse.self)
            promise.futureResult.whenComplete { _ in }
            let request = connection.value.startStream(handler: ResponseCollector(promise: promise))!
            request.sendHead(Self.head("/hold"), endStream: false)
            request.sendData(Self.body(size: 1_000, seed: 2), endStream: false)
            return NIOLoopBound(request, eventLoop: loop)
        }.wait()
        XCTAssertTrue(server.log.eventually { $0.heads == 1 })
        try loop.submit { request.value.cancel() }.wait()
        XCTAssertTrue(server.log.eventually { $0.resets == 1 }, "cancel did not reach the engine")

        try loop.submit {
            let promise = loop.makePromise(of: CollectedResponse.self)
            promise.futureResult.whenComplete { _ in }
            let request = connection.value.startStream(handler: ResponseCollector(promise: promise))!
            request.sendHead(Self.head("/hold"), endStream: false)
        }.wait()
        XCTAssertTrue(server.log.eventually { $0.heads == 2 })
        try channel.close().wait()
        XCTAssertTrue(server.log.eventually { $0.resets == 2 }, "connection loss did not reach the engine")
    }

    func testServerClosingMidStreamFailsRequest() throws {
        let rude = try ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(CloseAfterBytes(limit: 200))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        defer { try? rude.close().wait() }
        let (channel, connection) = try connect(port: rude.localAddress!.port!)
        defer { try? channel.close().wait() }
        let loop = channel.eventLoop
        let (promise, states) = try loop.submit { () -> (EventLoopPromise<CollectedResponse>, NIOLoopBound<Counter>) in
            let promise = loop.makePromise(of: CollectedResponse.self)
            let states = NIOLoopBound(Counter(), eventLoop: loop)
            connection.value.onStateChange = { states.value.count += 1 }
            let request = connection.value.startStream(handler: ResponseCollector(promise: promise))!
            request.sendHead(Self.head("/upload"), endStream: false)
            request.sendData(Self.body(size: 10_000, seed: 1), endStream: false)
            return (promise, states)
        }.wait()
        let result = try waitAll([promise], on: loop, seconds: 10)[0]
        XCTAssertThrowsError(try result.get()) { error in
            XCTAssertEqual(error as? UpstreamFailure, .reset("connection closed"))
        }
        let state = try loop.submit { (connection.value.isClosed, states.value.count) }.wait()
        XCTAssertTrue(state.0)
        XCTAssertGreaterThan(state.1, 0, "onStateChange not called on close")
    }
}

final class Counter {
    var count = 0
}

/// A server that accepts, reads `limit` bytes of whatever, then closes.
private final class CloseAfterBytes: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let limit: Int
    private var seen = 0

    init(limit: Int) { self.limit = limit }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        seen += unwrapInboundIn(data).readableBytes
        if seen >= limit { context.close(promise: nil) }
    }
}
