import FilterHost
import Foundation
import NIOCore
import NIOPosix
import XCTest
import Transport
import LuaRuntime
import Filters
import PluginTesting

final class TLSHandlerTests: XCTestCase {
    private var directory: TLSTestDirectory!
    private var server: TestCertificate!
    private var clientGroup: MultiThreadedEventLoopGroup!

    override func setUpWithError() throws {
        directory = try TLSTestDirectory()
        server = try directory.makeSelfSigned(name: "server")
        clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDownWithError() throws {
        try clientGroup.syncShutdownGracefully()
        directory.remove()
    }

    private func serverContext(caFile: String? = nil) throws -> TLSServerContext {
        try TLSServerContext(certificateChainFile: server.certificate, privateKeyFile: server.key,
                             caCertificatesFile: caFile)
    }

    /// A pattern that makes misordered or lost bytes visible.
    private func payload(_ size: Int) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: $0 % 251) }
    }

    // (a) 1 MiB echoed through TLS on both sides, with server-preferred ALPN.
    func testEchoOneMebibyteAndALPN() throws {
        let testServer = try TLSTestServer(context: serverContext()) { EchoHandler() }
        defer { XCTAssertNoThrow(try testServer.stop()) }
        // The client prefers http/1.1, but the server's order ("h2" first) wins.
        let clientContext = try TLSClientContext(caCertificatesFile: server.certificate,
                                                 alpnProtocols: ["http/1.1", "h2"])
        let bytes = payload(1 << 20)
        let client = try connectTestClient(group: clientGroup, port: testServer.port,
                                           context: clientContext, expectedBytes: bytes.count)
        // Written straight away, so most of it is buffered until the handshake completes.
        var writes: [EventLoopFuture<Void>] = []
        for start in stride(from: 0, to: bytes.count, by: 65_536) {
            let chunk = ByteBuffer(bytes: bytes[start..<min(start + 65_536, bytes.count)])
            writes.append(client.channel.write(chunk))
        }
        client.channel.flush()

        let handshake = try waitFor(client.handshake)
        XCTAssertEqual(handshake.negotiatedProtocol, "h2")
        XCTAssertEqual(handshake.serverName, "localhost")
        XCTAssertEqual(handshake.protocolVersion, "TLSv1.3")
        XCTAssertFalse(handshake.cipher.isEmpty)
        try waitFor(EventLoopFuture.andAllSucceed(writes, on: client.channel.eventLoop))
        let echoed = try waitFor(client.data)
        XCTAssertEqual(echoed.readableBytes, bytes.count)
        XCTAssertEqual(echoed.getBytes(at: echoed.readerIndex, length: echoed.readableBytes), bytes)

        XCTAssertTrue(testServer.events.waitUntil { $0.handshakes.count == 1 })
        let serverSide = testServer.events.handshakes[0]
        XCTAssertEqual(serverSide.serverName, "localhost", "server records the client's SNI")
        XCTAssertEqual(serverSide.negotiatedProtocol, "h2")
        XCTAssertEqual(testServer.events.peerCertificates, [false])

        try waitFor(client.channel.close())
    }

    func testCloseSendsCloseNotifyAndPeerCloseNotifyClosesChannel() throws {
        // With half-closure allowed a bare FIN leaves the server's side open: only our
        // client's close_notify, handled by the server's OpenSSLHandler, closes it.
        let testServer = try TLSTestServer(context: serverContext(), allowHalfClosure: true) { EchoHandler() }
        defer { XCTAssertNoThrow(try testServer.stop()) }
        let clientContext = try TLSClientContext(caCertificatesFile: server.certificate)
        let client = try connectTestClient(group: clientGroup, port: testServer.port,
                                           context: clientContext, expectedBytes: 3)
        client.channel.writeAndFlush(ByteBuffer(string: "bye"), promise: nil)
        XCTAssertEqual(String(buffer: try waitFor(client.data)), "bye")
        try waitFor(client.channel.close())
        XCTAssertTrue(testServer.events.waitUntil(timeout: 5) { $0.closedConnections == 1 })
        XCTAssertTrue(testServer.events.errors.isEmpty, "\(testServer.events.errors)")
    }

    func testServerCloseSendsCloseNotifyToOpenSSLClient() throws {
        let testServer = try TLSTestServer(context: serverContext()) { FixedHTTPResponder() }
        defer { XCTAssertNoThrow(try testServer.stop()) }
        // s_client prints "closed" only for a close_notify (a bare EOF prints "read:errno=0").
        let result = try runProcess(["openssl", "s_client", "-connect", "127.0.0.1:\(testServer.port)", "-ign_eof"],
                                    input: "GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        XCTAssertEqual(result.status, 0, result.error)
        XCTAssertTrue(result.output.contains("\r\n\r\nok"), result.output)
        XCTAssertTrue(result.output.hasSuffix("\nclosed\n") || result.output.hasSuffix("okclosed\n"), result.output)
    }

    func testNoCommonALPNProtocolProceedsWithoutALPN() throws {
        let testServer = try TLSTestServer(context: serverContext()) { EchoHandler() }
        defer { XCTAssertNoThrow(try testServer.stop()) }
        let clientContext = try TLSClientContext(caCertificatesFile: server.certificate, alpnProtocols: ["spdy/3"])
        let client = try connectTestClient(group: clientGroup, port: testServer.port,
                                           context: clientContext, expectedBytes: 5)
        client.channel.writeAndFlush(ByteBuffer(string: "hello"), promise: nil)
        XCTAssertNil(try waitFor(client.handshake).negotiatedProtocol)
        XCTAssertEqual(String(buffer: try waitFor(client.data)), "hello")
        try waitFor(client.channel.close())
    }

    // (b) curl as a real peer, over TLS 1.2 and 1.3.
    func testCurlHTTP11OverTLS12And13() throws {
        let testServer = try TLSTestServer(context: serverContext()) { FixedHTTPResponder() }
        defer { XCTAssertNoThrow(try testServer.stop()) }
        let url = "https://127.0.0.1:\(testServer.port)/"
        let variants: [([String], String)] = [([], "TLSv1.3"), (["--tls-max", "1.2"], "TLSv1.2"), (["--tlsv1.3"], "TLSv1.3")]
        for (index, (options, version)) in variants.enumerated() {
            let result = try runProcess(["curl", "-sk", "--http1.1", "-w", "\n%{http_version}", "--max-time", "10"]
                                        + options + [url])
            XCTAssertEqual(result.status, 0, "curl \(options): \(result.error)")
            XCTAssertEqual(result.output, "ok\n1.1", "curl \(options)")
            XCTAssertTrue(testServer.events.waitUntil { $0.handshakes.count == index + 1 })
            let handshake = testServer.events.handshakes[index]
            XCTAssertEqual(handshake.protocolVersion, version, "curl \(options)")
            XCTAssertEqual(handshake.negotiatedProtocol, "http/1.1", "curl --http1.1 offers only http/1.1")
            XCTAssertNil(handshake.serverName, "no SNI for an IP address")
        }
        XCTAssertTrue(testServer.events.errors.isEmpty, "\(testServer.events.errors)")
    }

    // (c) configuration errors name the file.
    func testMissingKeyFileIsReportedWithItsPath() throws {
        let missing = directory.path + "/missing/key.pem"
        XCTAssertThrowsError(try TLSServerContext(certificateChainFile: server.certificate, privateKeyFile: missing)) {
            let description = String(describing: $0)
            XCTAssertTrue($0 is TLSConfigurationError)
            XCTAssertTrue(description.contains(missing), description)
            XCTAssertTrue(description.contains("No such file or directory"), description)
        }
        let other = try directory.makeSelfSigned(name: "other")
        XCTAssertThrowsError(try TLSServerContext(certificateChainFile: server.certificate, privateKeyFile: other.key)) {
            let description = String(describing: $0)
            XCTAssertTrue(description.contains(other.key) && description.contains("does not match"), description)
        }
        XCTAssertThrowsError(try TLSServerContext(certificateChainFile: server.key, privateKeyFile: server.key)) {
            XCTAssertTrue(String(describing: $0).contains("cannot load certificate chain from \(server.key): error:"),
                          String(describing: $0))
        }
        XCTAssertThrowsError(try TLSClientContext(caCertificatesFile: missing)) {
            XCTAssertTrue(String(describing: $0).contains(missing), String(describing: $0))
        }
    }

    // (d) a plaintext client is dropped and the server keeps serving TLS clients.
    func testPlaintextClientIsClosedAndServerStaysUp() throws {
        let testServer = try TLSTestServer(context: serverContext()) { EchoHandler() }
        defer { XCTAssertNoThrow(try testServer.stop()) }
        let plain = try connectTestClient(group: clientGroup, port: testServer.port, context: nil, expectedBytes: 1)
        plain.channel.writeAndFlush(ByteBuffer(string: "GET / HTTP/1.1\r\nhost: localhost\r\n\r\n"), promise: nil)
        try waitFor(plain.channel.closeFuture)
        XCTAssertTrue(testServer.events.waitUntil { !$0.errors.isEmpty })
        XCTAssertTrue(testServer.events.errors.first is TLSError, "\(testServer.events.errors)")
        XCTAssertTrue(testServer.events.handshakes.isEmpty)

        let clientContext = try TLSClientContext(caCertificatesFile: server.certificate)
        let client = try connectTestClient(group: clientGroup, port: testServer.port,
                                           context: clientContext, expectedBytes: 5)
        client.channel.writeAndFlush(ByteBuffer(string: "again"), promise: nil)
        XCTAssertEqual(String(buffer: try waitFor(client.data)), "again")
        try waitFor(client.channel.close())
    }

    func testClientRejectsCertificateForAnotherName() throws {
        let testServer = try TLSTestServer(context: serverContext()) { EchoHandler() }
        defer { XCTAssertNoThrow(try testServer.stop()) }
        let clientContext = try TLSClientContext(caCertificatesFile: server.certificate)
        let client = try connectTestClient(group: clientGroup, port: testServer.port, context: clientContext,
                                           serverName: "example.com", expectedBytes: 1)
        XCTAssertThrowsError(try waitFor(client.handshake)) {
            XCTAssertTrue($0 is TLSError, "\($0)")
            XCTAssertTrue(String(describing: $0).contains("hostname mismatch"), "\($0)")
        }
        try waitFor(client.channel.closeFuture)
    }

    func testMutualTLSRequiresClientCertificate() throws {
        let clientCertificate = try directory.makeSelfSigned(name: "client", commonName: "client")
        let testServer = try TLSTestServer(context: serverContext(caFile: clientCertificate.certificate)) { EchoHandler() }
        defer { XCTAssertNoThrow(try testServer.stop()) }

        // Without a certificate the server aborts the handshake (in TLS 1.3 after the client finished).
        let anonymous = try TLSClientContext(caCertificatesFile: server.certificate)
        let rejected = try connectTestClient(group: clientGroup, port: testServer.port,
                                             context: anonymous, expectedBytes: 4)
        rejected.channel.writeAndFlush(ByteBuffer(string: "ping"), promise: nil)
        XCTAssertThrowsError(try waitFor(rejected.data))
        try waitFor(rejected.channel.closeFuture)
        XCTAssertTrue(testServer.events.waitUntil { !$0.errors.isEmpty })

        let withCertificate = try TLSClientContext(caCertificatesFile: server.certificate,
                                                   certificateChainFile: clientCertificate.certificate,
                                                   privateKeyFile: clientCertificate.key)
        let accepted = try connectTestClient(group: clientGroup, port: testServer.port,
                                             context: withCertificate, expectedBytes: 4)
        accepted.channel.writeAndFlush(ByteBuffer(string: "ping"), promise: nil)
        XCTAssertEqual(String(buffer: try waitFor(accepted.data)), "ping")
        XCTAssertEqual(testServer.events.peerCertificates, [true])
        try waitFor(accepted.channel.close())
    }
}
