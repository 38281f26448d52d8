import MeshAPI
import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest
import Transport

/// HTTP1ClientConnection on an EmbeddedChannel: the request on the wire, the response read
/// back, interim heads dropped, keep-alive and until-close bodies.
final class HTTP1ClientConnectionTests: XCTestCase {
    private final class Recorder: UpstreamResponseHandler {
        var events: [String] = []
        func upstreamHead(_ head: ResponseHead, endStream: Bool) {
            events.append("head \(head.status) \(head.reason ?? "-") \(head.headers.map { "\($0.name)=\($0.value)" }) end=\(endStream)")
        }
        func upstreamData(_ data: ByteBuffer, endStream: Bool) { events.append("data \(String(buffer: data)) end=\(endStream)") }
        func upstreamTrailers(_ trailers: HTTPHeaders) { events.append("trailers \(trailers.map { "\($0.name)=\($0.value)" })") }
        func upstreamWritabilityChanged(_ writable: Bool) {}
        func upstreamFailed(_ failure: UpstreamFailure) { events.append("failed") }
    }

    private var loop: EmbeddedEventLoop!
    private var channel: EmbeddedChannel!
    private var connection: HTTP1ClientConnection!

    override func setUpWithError() throws {
        loop = EmbeddedEventLoop()
        channel = EmbeddedChannel(loop: loop)
        connection = HTTP1ClientConnection(idleTimeout: .seconds(60), timers: LoopTimers(eventLoop: loop))
        try channel.pipeline.syncOperations.addHandler(connection)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 80)).wait()
    }

    override func tearDown() {
        _ = try? channel.finish()
        channel = nil
        connection = nil
        loop = nil
    }

    private func sent() throws -> String {
        var all = ""
        while let b = try channel.readOutbound(as: ByteBuffer.self) { all += String(buffer: b) }
        return all
    }

    private func start(_ method: String, headers: HTTPHeaders = ["user-agent": "t"], endStream: Bool = true) -> (Recorder, UpstreamRequest) {
        let recorder = Recorder()
        let request = connection.startStream(handler: recorder)!
        request.sendHead(RequestHead(method: method, scheme: "http", authority: "up:80", path: "/p?q", headers: headers,
                                     version: .http11), endStream: endStream)
        return (recorder, request)
    }

    func testGetThenKeepAliveResponseMakesTheConnectionIdle() throws {
        let (recorder, _) = start("GET")
        XCTAssertEqual(try sent(), "GET /p?q HTTP/1.1\r\nuser-agent: t\r\nhost: up:80\r\n\r\n")
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"))
        XCTAssertFalse(connection.canStartStream)
        try channel.writeInbound(ByteBuffer(string: "ok"))
        XCTAssertEqual(recorder.events, ["head 200 OK [\"Content-Length=2\"] end=false", "data ok end=false", "data  end=true"])
        XCTAssertTrue(connection.canStartStream)
    }

    func testChunkedRequestBodyAndChunkedResponseWithTrailers() throws {
        let (recorder, request) = start("POST", endStream: false)
        request.sendData(ByteBuffer(string: "abc"), endStream: false)
        request.sendTrailers(["x-t": "1"])
        XCTAssertEqual(try sent(), "POST /p?q HTTP/1.1\r\nuser-agent: t\r\nhost: up:80\r\ntransfer-encoding: chunked\r\n\r\n"
                       + "3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n")
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 201 \r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\ngrpc-status: 0\r\n\r\n"))
        XCTAssertEqual(recorder.events, ["head 201  [\"Transfer-Encoding=chunked\"] end=false", "data hi end=false",
                                         "trailers [\"grpc-status=0\"]"])
        XCTAssertTrue(connection.canStartStream)
    }

    func testBodylessPostAnnouncesAnEmptyBody() throws {
        _ = start("POST")
        XCTAssertEqual(try sent(), "POST /p?q HTTP/1.1\r\nuser-agent: t\r\nhost: up:80\r\ncontent-length: 0\r\n\r\n")
    }

    func testHeadResponseHasNoBodyDespiteItsLength() throws {
        let (recorder, _) = start("HEAD")
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"))
        XCTAssertEqual(recorder.events, ["head 200 OK [\"Content-Length=5\"] end=true"])
        XCTAssertTrue(connection.canStartStream)
    }

    func testBodyUntilCloseEndsWithTheConnection() throws {
        let (recorder, _) = start("GET")
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.0 200 OK\r\n\r\nall of it"))
        _ = try? channel.finish()
        XCTAssertEqual(recorder.events, ["head 200 OK [] end=false", "data all of it end=false", "data  end=true"])
    }

    func testMalformedResponseFailsTheRequest() throws {
        let (recorder, _) = start("GET")
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"))
        XCTAssertEqual(recorder.events, ["failed"])
        XCTAssertFalse(channel.isActive)
    }

    func testUpgradeTunnelsTheBytesAfterThe101() throws {
        let (recorder, request) = start("GET", headers: ["connection": "upgrade", "upgrade": "websocket"], endStream: false)
        XCTAssertEqual(try sent(), "GET /p?q HTTP/1.1\r\nconnection: upgrade\r\nupgrade: websocket\r\nhost: up:80\r\n\r\n")
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nframe"))
        XCTAssertEqual(recorder.events, ["head 101 Switching Protocols [\"Upgrade=websocket\"] end=false", "data frame end=false"])
        request.sendData(ByteBuffer(string: "raw"), endStream: false)
        XCTAssertEqual(try sent(), "raw")
    }
}
