import MeshAPI
import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest
import Transport

/// HTTP1ServerConnection on an EmbeddedChannel with a stream that answers every request
/// once it is complete: pipelining, keep-alive, framing and error replies on the wire.
final class HTTP1ServerConnectionTests: XCTestCase {
    /// Answers each complete request with its method, path and body size; HEAD with headers only.
    private final class AnsweringStream: DownstreamStreamEvents {
        let downstream: DownstreamStream
        var head: RequestHead?
        var body = 0
        let log: Log
        let answer: Bool

        init(_ downstream: DownstreamStream, log: Log, answer: Bool) {
            self.downstream = downstream
            self.log = log
            self.answer = answer
        }

        func receiveHead(_ head: RequestHead, endStream: Bool) {
            self.head = head
            log.lines.append("head \(head.method) \(head.authority)\(head.path) end=\(endStream)")
            if endStream { respond() }
        }
        func receiveData(_ data: ByteBuffer, endStream: Bool) {
            body += data.readableBytes
            if endStream { log.lines.append("end \(body)"); respond() }
        }
        func receiveTrailers(_ trailers: HTTPHeaders) {
            log.lines.append("trailers \(trailers.map { "\($0.name)=\($0.value)" })")
            respond()
        }
        func streamWritabilityChanged(_ writable: Bool) {}
        func downstreamReset() { log.lines.append("reset") }

        private func respond() {
            guard answer, let head else { return }
            let text = "\(head.method) \(head.path) \(body)"
            if head.path == "/chunked" {
                downstream.sendResponseHead(ResponseHead(status: 200), endStream: false)
                downstream.sendResponseData(ByteBuffer(string: text), endStream: false)
                downstream.sendResponseTrailers(["x-t": "1"])
                return
            }
            downstream.sendResponseHead(ResponseHead(status: 200, headers: ["content-length": "\(text.utf8.count)"]),
                                        endStream: head.method == "HEAD")
            if head.method != "HEAD" { downstream.sendResponseData(ByteBuffer(string: text), endStream: true) }
        }
    }

    private final class Log { var lines: [String] = [] }

    private final class Factory: DownstreamStreamFactory {
        let log = Log()
        var answer = true
        var streams: [AnsweringStream] = []
        func makeStream(downstream: DownstreamStream) -> DownstreamStreamEvents {
            let s = AnsweringStream(downstream, log: log, answer: answer)
            streams.append(s)
            return s
        }
    }

    private var loop: EmbeddedEventLoop!
    private var channel: EmbeddedChannel!
    private var factory: Factory!

    override func setUpWithError() throws {
        loop = EmbeddedEventLoop()
        channel = EmbeddedChannel(loop: loop)
        factory = Factory()
        let connection = HTTP1ServerConnection(
            factory: factory, connectionInfo: ConnectionInfo(remoteAddress: nil, localAddress: nil),
            timeouts: ConnectionTimeouts(idle: .seconds(60), requestHeaders: .seconds(5)), maxHeadBytes: 4096,
            timers: LoopTimers(eventLoop: loop))
        try channel.pipeline.syncOperations.addHandler(connection)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 80)).wait()
    }

    override func tearDown() {
        _ = try? channel.finish()
        channel = nil
        loop = nil
        factory = nil
    }

    private func send(_ s: String) throws {
        try channel.writeInbound(ByteBuffer(string: s))
    }

    private func received() throws -> String {
        var all = ""
        while let b = try channel.readOutbound(as: ByteBuffer.self) { all += String(buffer: b) }
        return all
    }

    func testPipelinedRequestsAreAnsweredInOrderInOneWriteEach() throws {
        try send("GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyzHEAD /c HTTP/1.1\r\nHost: h\r\n\r\n")
        var writes: [String] = []
        while let b = try channel.readOutbound(as: ByteBuffer.self) { writes.append(String(buffer: b)) }
        XCTAssertEqual(writes, [
            "HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nGET /a 0",
            "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nPOST /b 3",
            "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n",
        ])
        XCTAssertEqual(factory.log.lines, ["head GET h/a end=true", "head POST h/b end=false", "end 3", "head HEAD h/c end=true"])
        XCTAssertTrue(channel.isActive)
    }

    func testASecondRequestWaitsForTheFirstResponse() throws {
        factory.answer = false
        try send("GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n")
        XCTAssertEqual(factory.log.lines, ["head GET h/a end=true"])
        factory.streams[0].downstream.sendResponseHead(ResponseHead(status: 204), endStream: true)
        XCTAssertEqual(factory.log.lines, ["head GET h/a end=true", "head GET h/b end=true"])
        XCTAssertEqual(try received(), "HTTP/1.1 204 No Content\r\n\r\n")
    }

    func testChunkedResponseWithTrailers() throws {
        try send("POST /chunked HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nab\r\n0\r\nx-in: 1\r\n\r\n")
        XCTAssertEqual(factory.log.lines, ["head POST h/chunked end=false", "trailers [\"x-in=1\"]"])
        XCTAssertEqual(try received(),
                       "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nf\r\nPOST /chunked 2\r\n0\r\nx-t: 1\r\n\r\n")
    }

    func testHTTP10ClosesAfterTheResponse() throws {
        try send("GET /x HTTP/1.0\r\n\r\n")
        XCTAssertEqual(try received(), "HTTP/1.0 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nGET /x 0")
        XCTAssertFalse(channel.isActive)
    }

    func testConnectionCloseIsHonoured() throws {
        try send("GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        XCTAssertEqual(try received(), "HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nGET /x 0")
        XCTAssertFalse(channel.isActive)
    }

    func testMalformedRequestIsAnswered400AndNeverReachesAStream() throws {
        try send("GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n")
        XCTAssertTrue(try received().hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        XCTAssertEqual(factory.log.lines, [])
    }

    func testBadChunkMidBodyResetsTheStream() throws {
        factory.answer = false
        try send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\nzz\r\n")
        XCTAssertEqual(factory.log.lines, ["head POST x/ end=false", "reset"])
        XCTAssertTrue(try received().hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
    }

    func testHostRulesAndConnect() throws {
        try send("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        XCTAssertTrue(try received().hasPrefix("HTTP/1.1 400 "))
        tearDown()
        try setUpWithError()
        try send("CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n")
        XCTAssertTrue(try received().hasPrefix("HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n"))
    }

    func testUpgradeBecomesATunnelCarryingEarlyBytes() throws {
        factory.answer = false
        try send("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly")
        XCTAssertEqual(factory.log.lines, ["head GET h/ws end=false"])
        let stream = factory.streams[0]
        stream.downstream.sendResponseHead(ResponseHead(status: 101, headers: ["upgrade": "websocket"]), endStream: false)
        XCTAssertEqual(try received(), "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n")
        XCTAssertEqual(stream.body, 5)
        try send("more")
        XCTAssertEqual(stream.body, 9)
        stream.downstream.sendResponseData(ByteBuffer(string: "raw"), endStream: false)
        XCTAssertEqual(try received(), "raw")
    }

    func testUnsendableResponseFieldClosesTheConnection() throws {
        factory.answer = false
        try send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        factory.streams[0].downstream.sendResponseHead(ResponseHead(status: 200, headers: ["x": "a\r\nb"]), endStream: true)
        XCTAssertEqual(try received(), "")
        XCTAssertEqual(factory.log.lines.last, "reset")
        XCTAssertFalse(channel.isActive)
    }
}
