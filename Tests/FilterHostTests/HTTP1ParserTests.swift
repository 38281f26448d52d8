import NIOCore
import NIOHTTP1
import XCTest
import Transport

/// The HTTP/1 request decoder and response writer, byte by byte: RFC 9112's rules as
/// llhttp enforced them, in whole buffers and split at every position.
final class HTTP1ParserTests: XCTestCase {
    private enum Seen: Equatable {
        case head(method: String, target: String, minor: Int, host: String?, fields: [String], keepAlive: Bool, upgrade: Bool)
        case body(String)
        case end([String]?)
        case failed(Int)
    }

    /// Everything the decoder makes of `input` fed in reads of `split` bytes (0: at once),
    /// body pieces joined.
    private func decode(_ input: String, split: Int = 0, maxHead: Int = 8192) -> [Seen] {
        var decoder = HTTP1RequestDecoder(maxHeadBytes: maxHead)
        var buffer = ByteBuffer()
        var seen: [Seen] = []
        let bytes = Array(input.utf8)
        var fed = 0
        func pump() -> Bool {
            while true {
                switch decoder.next(&buffer) {
                case .needMoreBytes: return true
                case .failed(let e): seen.append(.failed(e.status)); return false
                case .head(let h):
                    seen.append(.head(method: h.method, target: h.target, minor: h.minorVersion, host: h.host,
                                      fields: h.headers.map { "\($0.name)=\($0.value)" }, keepAlive: h.keepAlive,
                                      upgrade: h.upgrade))
                    if h.upgrade { return false }
                case .body(let d):
                    if case .body(let prior)? = seen.last { seen[seen.count - 1] = .body(prior + String(buffer: d)) }
                    else { seen.append(.body(String(buffer: d))) }
                case .end(let t):
                    seen.append(.end(t.map { $0.map { "\($0.name)=\($0.value)" } }))
                }
            }
        }
        repeat {
            let n = split == 0 ? bytes.count : min(split, bytes.count - fed)
            buffer.writeBytes(bytes[fed..<(fed + n)])
            fed += n
            if !pump() { break }
        } while fed < bytes.count
        return seen
    }

    /// The same events whether the bytes come at once or one, two or seven at a time.
    private func assertDecodes(_ input: String, _ expected: [Seen], file: StaticString = #filePath, line: UInt = #line) {
        for split in [0, 1, 2, 7] {
            XCTAssertEqual(decode(input, split: split), expected, "split \(split)", file: file, line: line)
        }
    }

    func testSimpleGetIsOneHeadWithoutEnd() {
        assertDecodes("GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept:  */* \r\nX-Empty:\r\n\r\n", [
            .head(method: "GET", target: "/a?b=c", minor: 1, host: "example.com",
                  fields: ["Accept=*/*", "X-Empty="], keepAlive: true, upgrade: false),
        ])
    }

    func testKeepAliveFollowsVersionAndConnectionOptions() {
        let cases: [(String, Bool)] = [
            ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n", false),
            ("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n", false),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        ]
        for (input, keepAlive) in cases {
            guard case .head(_, _, _, _, _, let k, _)? = decode(input).first else { return XCTFail(input) }
            XCTAssertEqual(k, keepAlive, input)
        }
    }

    func testUpgradeNeedsBothFieldsAndStopsTheMessages() {
        var decoder = HTTP1RequestDecoder(maxHeadBytes: 8192)
        var buffer = ByteBuffer(string: "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\nFRAME")
        guard case .head(let h) = decoder.next(&buffer) else { return XCTFail() }
        XCTAssertTrue(h.upgrade)
        guard case .needMoreBytes = decoder.next(&buffer) else { return XCTFail() }
        XCTAssertEqual(String(buffer: buffer), "FRAME", "tunnel bytes stay for the tunnel")
        guard case .head(let plain) = decodeHead("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n") else {
            return XCTFail()
        }
        XCTAssertFalse(plain.upgrade)
    }

    private func decodeHead(_ s: String) -> HTTP1RequestDecoder.Event {
        var decoder = HTTP1RequestDecoder(maxHeadBytes: 8192)
        var buffer = ByteBuffer(string: s)
        return decoder.next(&buffer)
    }

    func testContentLengthBodyThenPipelinedRequest() {
        assertDecodes("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: y\r\n\r\n", [
            .head(method: "POST", target: "/p", minor: 1, host: "x", fields: ["Content-Length=5"], keepAlive: true, upgrade: false),
            .body("hello"),
            .end(nil),
            .head(method: "GET", target: "/n", minor: 1, host: "y", fields: [], keepAlive: true, upgrade: false),
        ])
    }

    func testZeroContentLengthHasNoBody() {
        assertDecodes("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", [
            .head(method: "POST", target: "/", minor: 1, host: "x", fields: ["Content-Length=0"], keepAlive: true, upgrade: false),
        ])
    }

    func testChunkedBodyWithExtensionsAndTrailers() {
        let input = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            + "5;name=value\r\nhello\r\nA \r\n0123456789\r\n0;last\r\nX-Sum: 15\r\nX-B:  b \r\n\r\n"
        assertDecodes(input, [
            .head(method: "POST", target: "/", minor: 1, host: "x", fields: ["Transfer-Encoding=gzip, chunked"],
                  keepAlive: true, upgrade: false),
            .body("hello0123456789"),
            .end(["X-Sum=15", "X-B=b"]),
        ])
    }

    func testChunkedBodyWithoutTrailersEnds() {
        assertDecodes("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", [
            .head(method: "POST", target: "/", minor: 1, host: "x", fields: ["Transfer-Encoding=chunked"],
                  keepAlive: true, upgrade: false),
            .body("abc"),
            .end(nil),
        ])
    }

    func testLeadingEmptyLinesAreIgnored() {
        assertDecodes("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", [
            .head(method: "GET", target: "/", minor: 1, host: "x", fields: [], keepAlive: true, upgrade: false),
        ])
    }

    func testExtensionMethodsAreTokens() {
        assertDecodes("PURGE /c HTTP/1.1\r\nHost: x\r\n\r\n", [
            .head(method: "PURGE", target: "/c", minor: 1, host: "x", fields: [], keepAlive: true, upgrade: false),
        ])
    }

    /// Each is refused with 400 wherever the bytes are split; nothing before the error is a head.
    /// The token class is two bit masks: exactly RFC 9110's tchar, every byte checked.
    func testTokenBytesAreExactlyTchar() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for b in UInt8.min...UInt8.max {
            XCTAssertEqual(HTTP1Syntax.isTokenByte(b), tchar.contains(b), "byte \(b)")
        }
    }

    func testMalformedHeadsAreRefused() {
        let bad: [String: String] = [
            "obs-fold": "GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
            "space in name": "GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n",
            "space before colon": "GET / HTTP/1.1\r\nHost: x\r\nX-A : v\r\n\r\n",
            "empty name": "GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n",
            "no colon": "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
            "bare LF in fields": "GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",
            "bare LF request line": "GET / HTTP/1.1\nHost: x\r\n\r\n",
            "bare CR in value": "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
            "NUL in value": "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\u{0}b\r\n\r\n",
            "DEL in value": "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\u{7F}b\r\n\r\n",
            "control in target": "GET /\u{1}bad HTTP/1.1\r\nHost: x\r\n\r\n",
            "two spaces": "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
            "no target": "GET HTTP/1.1\r\nHost: x\r\n\r\n",
            "bad version": "GET / HTTP/1.2\r\nHost: x\r\n\r\n",
            "lowercase version": "GET / http/1.1\r\nHost: x\r\n\r\n",
            "HTTP/2 version": "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
            "trailing space": "GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
            "bad method": "G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
            "TLS bytes": "\u{16}\u{3}\u{1}\u{2}\u{0}garbage\r\n\r\n",
            "two content-lengths": "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
            "content-length list": "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\nabcd",
            "content-length sign": "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nabcd",
            "empty content-length": "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n",
            "huge content-length": "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999999999999999\r\n\r\n",
            "length and chunked": "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "chunked not last": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "chunked twice": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "unknown coding": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            "empty coding": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,\r\n\r\n",
        ]
        for (name, input) in bad.sorted(by: { $0.key < $1.key }) {
            for split in [0, 1, 3] {
                XCTAssertEqual(decode(input, split: split), [.failed(400)], "\(name), split \(split)")
            }
        }
    }

    func testMalformedChunkedBodiesAreRefused() {
        let head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        let bad: [String: String] = [
            "bad size": "zz\r\nabc\r\n0\r\n\r\n",
            "no size": "\r\nabc\r\n0\r\n\r\n",
            "size overflow": "1000000000000000\r\n",
            "data without CRLF": "3\r\nabcX\r\n0\r\n\r\n",
            "bare LF after size": "3\nabc\r\n0\r\n\r\n",
            "control in extension": "3;a\u{1}\r\nabc\r\n0\r\n\r\n",
            "space inside size": "1 2\r\n",
            "folded trailer": "0\r\nX-A: a\r\n b\r\n\r\n",
            "bad trailer name": "0\r\nX A: a\r\n\r\n",
        ]
        for (name, body) in bad.sorted(by: { $0.key < $1.key }) {
            for split in [0, 1] {
                let seen = decode(head + body, split: split)
                XCTAssertEqual(seen.last, .failed(400), "\(name), split \(split): \(seen)")
            }
        }
    }

    func testHeadOverTheLimitIs431() {
        let big = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 200))\r\n\r\n"
        XCTAssertEqual(decode(big, maxHead: 100), [.failed(431)])
        XCTAssertEqual(decode(big, split: 7, maxHead: 100), [.failed(431)])
        // Unterminated: refused once the bytes pass the limit, not held forever.
        XCTAssertEqual(decode(String(big.dropLast(4)), split: 16, maxHead: 100), [.failed(431)])
        XCTAssertEqual(decode(big, maxHead: big.utf8.count).count, 1)
    }

    func testTrailersOverTheLimitAre431() {
        let input = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: \(String(repeating: "t", count: 300))\r\n\r\n"
        XCTAssertEqual(decode(input, maxHead: 200).last, .failed(431))
    }

    /// Seeded mutations of well-formed requests (bytes flipped, inserted, dropped, CR/LF/NUL
    /// and colons sprinkled): whatever the decoder makes of them is the same in any split,
    /// and what it accepts as fields holds only bytes a field may hold.
    func testMutatedRequestsDecodeTheSameInAnySplit() {
        let seeds = [
            "GET /a HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\r\n",
            "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.0\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: 1\r\n\r\n",
        ].map { Array($0.utf8) }
        let sprinkles: [UInt8] = [13, 10, 0, 32, 9, UInt8(ascii: ":"), UInt8(ascii: ";"), UInt8(ascii: "0"), 0x7F, 0xC3]
        var rng = SplitMix(seed: 13)
        for round in 0..<3000 {
            var bytes = seeds[round % seeds.count]
            for _ in 0...(rng.next() % 4) {
                let at = Int(rng.next() % UInt64(bytes.count))
                let byte = rng.next() % 2 == 0 ? sprinkles[Int(rng.next() % UInt64(sprinkles.count))] : UInt8(truncatingIfNeeded: rng.next())
                switch rng.next() % 3 {
                case 0: bytes[at] = byte
                case 1: bytes.insert(byte, at: at)
                default: bytes.remove(at: at)
                }
            }
            let input = String(decoding: bytes, as: UTF8.self)
            guard Array(input.utf8) == bytes else { continue }  // only inputs a String holds byte for byte
            let whole = decode(input)
            for split in [1, 3, 7] {
                XCTAssertEqual(decode(input, split: split), whole, "round \(round), split \(split): \(bytes)")
            }
            for case .head(_, _, _, _, let fields, _, _) in whole {
                for field in fields {
                    XCTAssertFalse(field.utf8.contains { $0 < 0x20 && $0 != 9 || $0 == 0x7F }, "\(bytes)")
                }
            }
        }
    }

    private struct SplitMix {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    func testResponseHeadsAndTheirFraming() {
        func first(_ s: String, head: Bool = false) -> String {
            var decoder = HTTP1ResponseDecoder(maxHeadBytes: 1024)
            decoder.expectResponse(toHEAD: head, upgrade: false)
            var buffer = ByteBuffer(string: s)
            switch decoder.next(&buffer) {
            case .head(let h, let framing): return "\(h.status) '\(h.reason)' \(framing)"
            case .failed(let e): return "failed \(e.status)"
            default: return "other"
            }
        }
        XCTAssertEqual(first("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"), "200 'OK' length(3)")
        XCTAssertEqual(first("HTTP/1.1 200\r\n\r\n"), "200 '' untilClose")
        XCTAssertEqual(first("HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"), "204 'No Content' none")
        XCTAssertEqual(first("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), "200 'OK' untilClose")
        XCTAssertEqual(first("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), "200 'OK' chunked")
        XCTAssertEqual(first("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", head: true), "200 'OK' none")
        XCTAssertEqual(first("HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n"), "304 'Not Modified' none")
        for bad in ["HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.2 200 OK\r\n\r\n", "HTTP/1.1 099 X\r\n\r\n",
                    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "HTTP/1.1 200 O\u{1}K\r\n\r\n",
                    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "ICY 200 OK\r\n\r\n"] {
            XCTAssertEqual(first(bad), "failed 400", bad)
        }
    }

    // MARK: the response writer

    private func written(status: Int, reason: String? = nil, minor: Int = 1, headers: HTTPHeaders,
                         connection: StaticString? = nil) -> (String, HTTP1BodyFraming, Bool) {
        var out = ByteBuffer()
        let w = HTTP1Writer.writeHead(status: status, reason: reason, minorVersion: minor, headers: headers,
                                              connection: connection, into: &out)
        return (String(buffer: out), w.framing, w.valid)
    }

    func testResponseFramingFollowsNIOsEncoder() {
        var r = written(status: 200, headers: ["content-length": "3", "transfer-encoding": "chunked", "x": "y"])
        XCTAssertEqual(r.0, "HTTP/1.1 200 OK\r\ncontent-length: 3\r\nx: y\r\n\r\n")
        XCTAssertEqual(r.1, .length(0))
        r = written(status: 200, headers: ["transfer-encoding": "gzip", "x": "y"])
        XCTAssertEqual(r.0, "HTTP/1.1 200 OK\r\nx: y\r\ntransfer-encoding: chunked\r\n\r\n")
        XCTAssertEqual(r.1, .chunked)
        r = written(status: 204, headers: ["content-length": "0", "x": "y"])
        XCTAssertEqual(r.0, "HTTP/1.1 204 No Content\r\nx: y\r\n\r\n")
        XCTAssertEqual(r.1, HTTP1BodyFraming.none)
        r = written(status: 200, minor: 0, headers: ["x": "y", "Connection": "keep-alive"], connection: "close")
        XCTAssertEqual(r.0, "HTTP/1.0 200 OK\r\nx: y\r\nconnection: close\r\n\r\n")
        XCTAssertEqual(r.1, .untilClose)
        r = written(status: 299, reason: "Fine\r\nX-Injected: 1", headers: [:])
        XCTAssertEqual(r.0, "HTTP/1.1 299 \r\ntransfer-encoding: chunked\r\n\r\n", "an unsendable phrase is replaced")
        r = written(status: 200, reason: "Very Fine", headers: ["content-length": "0"])
        XCTAssertEqual(r.0, "HTTP/1.1 200 Very Fine\r\ncontent-length: 0\r\n\r\n")
    }

    func testUnsendableFieldsAreRefused() {
        XCTAssertFalse(written(status: 200, headers: ["x": "a\r\nx-injected: 1"]).2)
        XCTAssertFalse(written(status: 200, headers: ["bad name": "v"]).2)
        XCTAssertFalse(written(status: 200, headers: ["x": "\u{0}"]).2)
        XCTAssertTrue(written(status: 200, headers: ["x": "tab\there, ünïcode"]).2)
    }

    func testChunksAndLastChunk() {
        var out = ByteBuffer()
        HTTP1Writer.writeChunk(ByteBuffer(string: String(repeating: "a", count: 26)), into: &out)
        XCTAssertTrue(HTTP1Writer.writeLastChunk(trailers: ["grpc-status": "0"], into: &out))
        XCTAssertEqual(String(buffer: out), "1a\r\n\(String(repeating: "a", count: 26))\r\n0\r\ngrpc-status: 0\r\n\r\n")
        var big = ByteBuffer()
        HTTP1Writer.writeChunkSize(0x10000, into: &big)
        XCTAssertEqual(String(buffer: big), "10000\r\n")
    }
}
