import Foundation
import NIOCore
import NIOPosix
import XCTest
import Transport
import LuaRuntime
import Filters
import PluginTesting
@testable import FilterHost

/// HTTP2ServerCodec driven by real HTTP/2 clients (curl, nghttp, h2load) and raw frames.
final class HTTP2CodecTests: XCTestCase {
    private var server: EchoServer!

    override func setUpWithError() throws {
        server = try EchoServer()
    }

    override func tearDown() {
        server?.stop()
        server = nil
    }

    func testCurlGet() throws {
        let result = try runProcess("/usr/bin/curl", ["-s", "--http2-prior-knowledge", "-D", "-", "\(server.url)/hello?x=1"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.hasPrefix("HTTP/2 200"), result.stdout)
        XCTAssertTrue(result.stdout.contains("x-echo-path: /hello?x=1"), result.stdout)
        XCTAssertFalse(result.stdout.lowercased().contains("connection:"), "connection header must be dropped")
    }

    func testCurlPostFiveMegabytesIsEchoed() throws {
        let directory = FileManager.default.temporaryDirectory
        let input = directory.appendingPathComponent("h2-in-\(UUID().uuidString)")
        let output = directory.appendingPathComponent("h2-out-\(UUID().uuidString)")
        defer {
            try? FileManager.default.removeItem(at: input)
            try? FileManager.default.removeItem(at: output)
        }
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: 5 << 20)
        for index in stride(from: 0, to: bytes.count, by: 8) {
            withUnsafeBytes(of: generator.next() as UInt64) { word in
                for offset in 0..<8 { bytes[index + offset] = word[offset] }
            }
        }
        try Data(bytes).write(to: input)
        let result = try runProcess("/usr/bin/curl", [
            "-s", "--http2-prior-knowledge", "--data-binary", "@\(input.path)",
            "-H", "content-type: application/octet-stream", "-o", output.path, "-w", "%{http_code}",
            "\(server.url)/upload",
        ])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, "200")
        XCTAssertEqual(try sha256(ofFile: output.path), try sha256(ofFile: input.path))
    }

    func testOversizedHeadersGet431() throws {
        // Over our 60 KiB list limit, under the 64 KiB block nghttp2 (in curl) will send.
        let big = String(repeating: "a", count: 30_900)
        let result = try runProcess("/usr/bin/curl", [
            "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}",
            "-H", "x-big1: \(big)", "-H", "x-big2: \(big)", "\(server.url)/big",
        ])
        XCTAssertEqual(result.stdout, "431", result.stderr)
    }

    func testNghttpReceivesTrailers() throws {
        let result = try runProcess("/usr/bin/nghttp", ["-v", "\(server.url)/trailers"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("grpc-status: 0"), result.stdout)
        // The trailer is its own HEADERS frame, after the body, carrying END_STREAM.
        let trailer = result.stdout.range(of: "grpc-status: 0")!
        let data = result.stdout.range(of: "recv DATA frame")!
        XCTAssertLessThan(data.lowerBound, trailer.lowerBound, result.stdout)
    }

    func testH2loadManyStreams() throws {
        let result = try runProcess("/usr/bin/h2load", ["-n", "2000", "-c", "4", "-m", "10", "\(server.url)/"], timeout: 120)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("2000 succeeded"), result.stdout)
    }

    /// Many concurrent 256 KiB uploads: exercises flow control and request-reading pauses.
    func testH2loadConcurrentUploads() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("h2-body-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(repeating: 0x61, count: 256 * 1024).write(to: file)
        let result = try runProcess("/usr/bin/h2load", ["-n", "200", "-c", "2", "-m", "20", "-d", file.path,
                                                        "\(server.url)/upload"], timeout: 120)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("200 succeeded"), result.stdout)
        XCTAssertTrue(result.stdout.contains("(52428800) data"), result.stdout)
    }

    /// "Rapid reset": open and RST 1000 streams; the server must answer with
    /// GOAWAY(ENHANCE_YOUR_CALM) and close the connection.
    func testRapidResetFloodGetsGoaway() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let closed = group.next().makePromise(of: ByteBuffer.self)
        let channel = try ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RawCollector(closed: closed))
                }
            }
            .connect(host: "127.0.0.1", port: server.port).wait()
        let loop = channel.eventLoop
        let timeout = loop.scheduleTask(in: .seconds(15)) { closed.fail(ChannelError.alreadyClosed) }
        // Paced batches, so the server has read everything we sent when it closes.
        try loop.submit {
            var preface = channel.allocator.buffer(capacity: 64)
            preface.writeString("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            RawFrames.write(&preface, type: 4, flags: 0, stream: 0, payload: [])
            channel.writeAndFlush(preface, promise: nil)
        }.wait()
        for batch in 0..<50 {
            let stop = try loop.submit { () -> Bool in
                guard channel.isActive else { return true }
                var buffer = channel.allocator.buffer(capacity: 20 * 32)
                for index in 0..<20 {
                    let stream = UInt32(1 + 2 * (batch * 20 + index))
                    // HEADERS (END_STREAM|END_HEADERS): GET http / from the HPACK static table.
                    RawFrames.write(&buffer, type: 1, flags: 0x5, stream: stream, payload: [0x82, 0x86, 0x84])
                    RawFrames.write(&buffer, type: 3, flags: 0, stream: stream, payload: [0, 0, 0, 8])
                }
                channel.writeAndFlush(buffer, promise: nil)
                return false
            }.wait()
            if stop { break }
            usleep(5_000)
        }
        let received = try closed.futureResult.wait()
        timeout.cancel()
        let goaway = RawFrames.find(type: 7, in: received)
        XCTAssertNotNil(goaway, "no GOAWAY received")
        if let payload = goaway {
            XCTAssertEqual(payload.count >= 8 ? UInt32(payload[4]) << 24 | UInt32(payload[5]) << 16
                           | UInt32(payload[6]) << 8 | UInt32(payload[7]) : 0, 11, "expected ENHANCE_YOUR_CALM")
        }
    }
}

/// Collects everything the server sends; fulfils `closed` when the connection closes.
private final class RawCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private var received = ByteBuffer()
    private let closed: EventLoopPromise<ByteBuffer>

    init(closed: EventLoopPromise<ByteBuffer>) { self.closed = closed }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        received.writeBuffer(&buffer)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed.succeed(received)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

enum RawFrames {
    static func write(_ buffer: inout ByteBuffer, type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8]) {
        buffer.writeInteger(UInt8(payload.count >> 16))
        buffer.writeInteger(UInt16(payload.count & 0xffff))
        buffer.writeInteger(type)
        buffer.writeInteger(flags)
        buffer.writeInteger(stream)
        buffer.writeBytes(payload)
    }

    /// Payload of the first frame of `type` (frames after the server preface SETTINGS).
    static func find(type: UInt8, in buffer: ByteBuffer) -> [UInt8]? {
        var buffer = buffer
        while buffer.readableBytes >= 9 {
            let high = Int(buffer.readInteger(as: UInt8.self)!)
            let low = Int(buffer.readInteger(as: UInt16.self)!)
            let frameType = buffer.readInteger(as: UInt8.self)!
            buffer.moveReaderIndex(forwardBy: 5)
            guard let payload = buffer.readBytes(length: high << 16 | low) else { return nil }
            if frameType == type { return payload }
        }
        return nil
    }
}
