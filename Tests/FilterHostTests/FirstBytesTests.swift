@testable import FilterHost
import MeshAPI
import NIOCore
import XCTest

/// Protocol detection on a listener that serves HTTP and bytes (Envoy's http_inspector) and
/// the mesh ALPN that decides behind TLS.
final class FirstBytesTests: XCTestCase {
    private func classify(_ text: String, on carriage: Carriage = .sniffed) -> DownstreamProtocol? {
        FirstBytes.classify(ByteBuffer(string: text).readableBytesView, on: carriage)
    }

    func testSniffing() {
        XCTAssertEqual(classify("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), .http1)
        XCTAssertEqual(classify("OPTIONS * HTTP/1.0\n"), .http1)
        XCTAssertEqual(classify("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), .http2)
        // Partial: wait for more.
        XCTAssertNil(classify("PRI * HTTP/2"))
        XCTAssertNil(classify("GET /long/path"))
        XCTAssertNil(classify("GE"))
        // A line that is not a request line, a TLS record, binary: bytes.
        XCTAssertEqual(classify("hello world\n"), .bytes)
        XCTAssertEqual(classify("\u{16}\u{03}\u{01}\u{00}"), .bytes)
        XCTAssertEqual(classify(" GET / HTTP/1.1\r\n"), .bytes)
        XCTAssertEqual(classify("GET / HTTP/2.0\r\n"), .bytes)
        XCTAssertEqual(classify(String(repeating: "A", count: 40)), .bytes)
        // A plain HTTP listener: all but the preface is HTTP/1 (its codec answers garbage with 400).
        XCTAssertEqual(classify("hello world\n", on: .http), .http1)
        XCTAssertEqual(classify("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", on: .http), .http2)
        // A bytes listener in cleartext (PERMISSIVE, first byte not TLS): bytes whatever they are.
        XCTAssertEqual(classify("GET / HTTP/1.1\r\n\r\n", on: .bytes), .bytes)
    }

    func testCarriageAndALPN() {
        var l = Listener(name: "l", address: "127.0.0.1", port: 1, routeConfig: "rc")
        XCTAssertEqual(Carriage(l), .http)
        l.tcpProxy = TCPProxy(routes: [])
        XCTAssertEqual(Carriage(l), .sniffed)
        XCTAssertEqual(Carriage.sniffed.afterHandshake(alpn: "istio-peer-exchange"), .bytes)
        XCTAssertEqual(Carriage.sniffed.afterHandshake(alpn: "istio"), .bytes)
        XCTAssertEqual(Carriage.sniffed.afterHandshake(alpn: "h2"), .http2)
        XCTAssertEqual(Carriage.sniffed.afterHandshake(alpn: nil), .http1)
        XCTAssertEqual(Carriage.http.afterHandshake(alpn: "istio"), .http1)
        l.routeConfig = ""
        XCTAssertEqual(Carriage(l), .bytes)
        XCTAssertEqual(Carriage.bytes.afterHandshake(alpn: "h2"), .bytes)
    }
}
