@testable import FilterHost
import MeshAPI
import NIOCore
import XCTest

/// SNI reading on hostile and ordinary ClientHellos.
final class ClientHelloReaderTests: XCTestCase {
    /// A ClientHello record: TLS 1.2 header, random, a session id, two suites, null compression,
    /// then `extensions` (nil: no extensions block at all).
    static func clientHello(sni: String?, extensions extra: [UInt8] = [], omitExtensions: Bool = false,
                            recordSize: Int? = nil) -> [UInt8] {
        var body: [UInt8] = [0x03, 0x03] + [UInt8](repeating: 7, count: 32) + [0] + [0, 4, 0x13, 0x01, 0x13, 0x02] + [1, 0]
        if !omitExtensions {
            var exts: [UInt8] = extra
            if let sni {
                let name = Array(sni.utf8)
                let entry: [UInt8] = [0] + be16(name.count) + name
                let list = be16(entry.count) + entry
                exts += [0, 0] + be16(list.count) + list
            }
            body += be16(exts.count) + exts
        }
        let handshake: [UInt8] = [1] + be24(body.count) + body
        // Split across records of `recordSize` bytes when asked.
        let size = recordSize ?? handshake.count
        var out: [UInt8] = []
        var at = 0
        while at < handshake.count {
            let part = Array(handshake[at..<min(at + size, handshake.count)])
            out += [22, 3, 1] + be16(part.count) + part
            at += size
        }
        return out
    }

    static func be16(_ n: Int) -> [UInt8] { [UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] }
    static func be24(_ n: Int) -> [UInt8] { [UInt8(n >> 16 & 0xFF)] + be16(n) }

    private func read(_ bytes: [UInt8]) -> ClientHelloReader.Outcome {
        ClientHelloReader.read(ByteBuffer(bytes: bytes).readableBytesView)
    }

    func testReadsServerName() {
        XCTAssertEqual(read(Self.clientHello(sni: "Echo.Example.COM")), .clientHello(serverName: "echo.example.com"))
        // Another extension before SNI is skipped.
        XCTAssertEqual(read(Self.clientHello(sni: "a.test", extensions: [0, 23, 0, 0])), .clientHello(serverName: "a.test"))
    }

    func testClientHelloSpanningRecords() {
        XCTAssertEqual(read(Self.clientHello(sni: "split.test", recordSize: 10)), .clientHello(serverName: "split.test"))
    }

    func testEveryTruncationAsksForMore() {
        let full = Self.clientHello(sni: "t.test", recordSize: 20)
        for n in 0..<full.count {
            XCTAssertEqual(read(Array(full.prefix(n))), .needMore, "prefix \(n)")
        }
    }

    func testNoSNIAndNoExtensions() {
        XCTAssertEqual(read(Self.clientHello(sni: nil)), .clientHello(serverName: nil))
        XCTAssertEqual(read(Self.clientHello(sni: nil, omitExtensions: true)), .clientHello(serverName: nil))
    }

    func testNotTLS() {
        XCTAssertEqual(read(Array("GET / HTTP/1.1\r\n".utf8)), .notTLS)
        XCTAssertEqual(read(Array("PRI * HTTP/2.0\r\n".utf8)), .notTLS)
        XCTAssertEqual(read([22, 9]), .notTLS)
        // An alert record, or a handshake that is not a ClientHello (a ServerHello).
        XCTAssertEqual(read([21, 3, 3, 0, 2, 2, 40]), .notTLS)
        var serverHello = Self.clientHello(sni: "x.test")
        serverHello[5] = 2
        XCTAssertEqual(read(serverHello), .notTLS)
    }

    func testHostileLengths() {
        // Handshake length claims more than the cap.
        XCTAssertEqual(read([22, 3, 1, 0, 4, 1, 0xFF, 0xFF, 0xFF]), .notTLS)
        // A record length of 0, and one over a TLS record's maximum.
        XCTAssertEqual(read([22, 3, 1, 0, 0]), .notTLS)
        XCTAssertEqual(read([22, 3, 1, 0xFF, 0xFF]), .notTLS)
        // Inner lengths that run past the ClientHello: session id, extensions, the SNI list.
        var hello = Self.clientHello(sni: "x.test")
        hello[5 + 4 + 34] = 200 // session id length
        XCTAssertEqual(read(hello), .notTLS)
        hello = Self.clientHello(sni: "x.test")
        let extLengthAt = 5 + 4 + 2 + 32 + 1 + 6 + 2
        hello[extLengthAt] = 0x7F
        XCTAssertEqual(read(hello), .notTLS)
        hello = Self.clientHello(sni: "x.test")
        hello[extLengthAt + 2 + 4] = 0x7F // server_name list length
        XCTAssertEqual(read(hello), .notTLS)
    }

    func testUnusableNames() {
        XCTAssertEqual(read(Self.clientHello(sni: "bad name")), .clientHello(serverName: nil))
        XCTAssertEqual(read(Self.clientHello(sni: String(repeating: "a", count: 300))), .clientHello(serverName: nil))
        XCTAssertEqual(read(Self.clientHello(sni: "")), .clientHello(serverName: nil))
    }

    func testRandomGarbageNeverCrashes() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var bytes = Self.clientHello(sni: "fuzz.test", recordSize: Int.random(in: 1...80, using: &rng))
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            _ = read(Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng))))
        }
    }
}

final class TCPRouteTableTests: XCTestCase {
    private let clusters = ["a": Cluster(name: "a", endpoints: []), "b": Cluster(name: "b", endpoints: [])]

    private func address(_ ip: String) -> SocketAddress { try! SocketAddress(ipAddress: ip, port: 1) }

    func testFirstMatchingRouteWins() throws {
        let proxy = TCPProxy(routes: [
            TCPProxyRoute(match: TCPProxyMatch(serverNames: ["*.example.com"]), cluster: "a"),
            TCPProxyRoute(match: TCPProxyMatch(sourcePrefixes: ["10.0.0.0/8"]), cluster: "b"),
            TCPProxyRoute(match: TCPProxyMatch(serverNames: ["exact.test"]), cluster: "b"),
        ])
        let table = try TCPRouteTable(proxy, clusters: clusters, path: "l")
        XCTAssertTrue(table.needsServerName)
        XCTAssertEqual(table.choose(serverName: "api.example.com", source: address("127.0.0.1"), destination: nil)?.cluster, "a")
        XCTAssertNil(table.choose(serverName: "example.com", source: address("127.0.0.1"), destination: nil)?.cluster)
        XCTAssertEqual(table.choose(serverName: nil, source: address("10.1.2.3"), destination: nil)?.cluster, "b")
        XCTAssertEqual(table.choose(serverName: "exact.test", source: address("::1"), destination: nil)?.cluster, "b")
        XCTAssertNil(table.choose(serverName: nil, source: address("127.0.0.1"), destination: nil)?.cluster)
    }

    func testWeights() throws {
        let proxy = TCPProxy(routes: [TCPProxyRoute(weightedClusters: [WeightedCluster(name: "a", weight: 80),
                                                                       WeightedCluster(name: "b", weight: 20)])])
        let table = try TCPRouteTable(proxy, clusters: clusters, path: "l")
        XCTAssertFalse(table.needsServerName)
        XCTAssertEqual(table.choose(serverName: nil, source: nil, destination: nil, roll: { _ in 79 })?.cluster, "a")
        XCTAssertEqual(table.choose(serverName: nil, source: nil, destination: nil, roll: { _ in 80 })?.cluster, "b")
    }

    func testBadConfigIsRefused() {
        let bad: [TCPProxyRoute] = [
            TCPProxyRoute(cluster: "missing"),
            TCPProxyRoute(),
            TCPProxyRoute(weightedClusters: [WeightedCluster(name: "a", weight: 0)]),
            TCPProxyRoute(match: TCPProxyMatch(sourcePrefixes: ["10.0.0.0/33"]), cluster: "a"),
            TCPProxyRoute(match: TCPProxyMatch(destinationPrefixes: ["not-an-ip"]), cluster: "a"),
        ]
        for r in bad {
            XCTAssertThrowsError(try TCPRouteTable(TCPProxy(routes: [r]), clusters: clusters, path: "l"), "\(r)")
        }
    }

    func testCIDR() {
        XCTAssertTrue(CIDR("127.0.0.0/8")!.contains(address("127.9.9.9")))
        XCTAssertFalse(CIDR("127.0.0.0/8")!.contains(address("128.0.0.1")))
        XCTAssertTrue(CIDR("10.1.2.3")!.contains(address("10.1.2.3")))
        XCTAssertTrue(CIDR("::/0")!.contains(address("::1")))
        XCTAssertFalse(CIDR("::/0")!.contains(address("1.2.3.4")))
        XCTAssertTrue(CIDR("192.168.0.0/23")!.contains(address("192.168.1.255")))
        XCTAssertFalse(CIDR("192.168.0.0/23")!.contains(address("192.168.2.0")))
    }
}
