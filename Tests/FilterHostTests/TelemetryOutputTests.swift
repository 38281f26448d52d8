@testable import FilterHost
import Foundation
import MeshAPI
import NIOCore
import NIOHTTP1
import Transport
import XCTest

/// Access-log encodings and the span exporter's bounds, without sockets to a real collector.
final class TelemetryOutputTests: XCTestCase {
    private func info() throws -> StreamInfo {
        var i = StreamInfo()
        i.startWallTime = 1_700_000_000.25
        i.method = "GET"
        i.path = "/a?b=\"c\""
        i.authority = "svc:9080"
        i.userAgent = "evil\"agent\n\u{01}"
        i.requestID = "rid"
        i.responseCode = 503
        i.addFlag(.upstreamConnectionFailure)
        i.connection = ConnectionInfo(remoteAddress: try SocketAddress(ipAddress: "10.0.0.2", port: 5555),
                                      localAddress: try SocketAddress(ipAddress: "::1", port: 15006))
        return i
    }

    /// Whatever a client puts in a header, each JSON line is one valid object.
    func testJSONLineIsValidWhateverTheHeaders() throws {
        let line = AccessLogEntry(try info()).json
        XCTAssertTrue(line.hasSuffix("}\n"))
        XCTAssertEqual(line.filter { $0 == "\n" }.count, 1)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(object["user_agent"] as? String, "evil\"agent\n\u{01}")
        XCTAssertEqual(object["path"] as? String, "/a?b=\"c\"")
        XCTAssertEqual(object["response_code"] as? Int, 503)
        XCTAssertEqual(object["response_flags"] as? String, "UF")
        XCTAssertEqual(object["downstream_remote_address"] as? String, "10.0.0.2:5555")
        XCTAssertEqual(object["downstream_local_address"] as? String, "[::1]:15006")
        XCTAssertTrue(object["upstream_cluster"] is NSNull)
        XCTAssertEqual(object["start_time"] as? String, "2023-11-14T22:13:20.250Z")
    }

    /// Every field is zero-padded to its width (the digits are written by hand).
    func testTimestampIsPaddedRFC3339InUTC() {
        XCTAssertEqual(AccessLogEntry.timestamp(1_672_628_645.0625), "2023-01-02T03:04:05.062Z")
        XCTAssertEqual(AccessLogEntry.timestamp(1_700_000_000.25), "2023-11-14T22:13:20.250Z")
    }

    func testTextLineHasIstiosFieldsInOrder() throws {
        let line = AccessLogEntry(try info()).text
        XCTAssertTrue(line.hasPrefix("[2023-11-14T22:13:20.250Z] \"GET /a?b=\"c\" HTTP/1.1\" 503 UF - - \"-\" 0 0 "), line)
        XCTAssertTrue(line.hasSuffix("\"rid\" \"svc:9080\" \"-\" - - [::1]:15006 10.0.0.2:5555 - -\n"), line)
    }

    /// A full queue drops at once and counts; nothing waits on the (absent) collector.
    func testExporterQueueIsBoundedAndCountsDrops() throws {
        let exporter = SpanExporter(host: "127.0.0.1", port: 9, resource: [], capacity: 2, batchSize: 512, flushInterval: 60)
        defer { exporter.shutdown() }
        let ctx = TraceContext(traceIDHigh: 1, traceIDLow: 1, spanID: 1, sampled: true)
        let span = SpanRecord(context: ctx, name: "s", kind: .client, startUnixNano: 0, endUnixNano: 1, tags: [], isError: false)
        let start = NIODeadline.now()
        for _ in 0..<5 { exporter.submit(span) }
        XCTAssertLessThan((NIODeadline.now() - start).nanoseconds, 100_000_000)
        XCTAssertEqual(exporter.counters, SpanExporter.Counters(exported: 0, dropped: 3))
    }
}

/// Pushed telemetry: custom formats, JSON labels and filters as the proxy renders them.
final class PushedAccessLogTests: XCTestCase {
    private func entry(code: Int, user: String?) throws -> AccessLogEntry {
        var i = StreamInfo()
        i.startWallTime = 1_700_000_000.25
        i.method = "GET"
        i.path = "/status/503?x=1"
        i.authority = "svc:9080"
        i.responseCode = code
        i.bytesSent = 12
        var headers = HTTPHeaders()
        if let user { headers.add(name: "X-User", value: user) }
        return AccessLogEntry(i, requestHeaders: headers)
    }

    func testACustomTextFormat() throws {
        let log = try CompiledAccessLog(AccessLogSettings(format: "%REQ(:METHOD)% %REQ(X-USER?USER-AGENT):3% %RESPONSE_CODE% %BYTES_SENT% %UPSTREAM_HOST%"))
        XCTAssertEqual(try entry(code: 503, user: "bobby").line(for: log, encoding: .text), "GET bob 503 12 -\n")
        XCTAssertEqual(try entry(code: 503, user: nil).line(for: log, encoding: .text), "GET - 503 12 -\n")
    }

    func testJSONLabelsKeepNumbersNumbers() throws {
        let log = try CompiledAccessLog(AccessLogSettings(encoding: .json, labels: ["code": "%RESPONSE_CODE%", "who": "u=%REQ(X-USER)%",
                                                                                   "host": "%UPSTREAM_HOST%"]))
        let line = try XCTUnwrap(try entry(code: 200, user: "bob").line(for: log, encoding: .json))
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(object["code"] as? Int, 200)
        XCTAssertEqual(object["who"] as? String, "u=bob")
        XCTAssertTrue(object["host"] is NSNull)
    }

    func testAFilterKeepsOnlyWhatItMatches() throws {
        let log = try CompiledAccessLog(AccessLogSettings(filter: "response.code >= 500 && request.headers['x-user'] == 'bob'"))
        XCTAssertNotNil(try entry(code: 503, user: "bob").line(for: log, encoding: .text))
        XCTAssertNil(try entry(code: 200, user: "bob").line(for: log, encoding: .text))
        XCTAssertNil(try entry(code: 503, user: nil).line(for: log, encoding: .text), "absent header: the filter is false")
    }

    func testABadPushedFormatRefusesTheConfig() {
        XCTAssertThrowsError(try SnapshotTelemetry(ProxyTelemetry(accessLog: AccessLogSettings(format: "%BOGUS%")))) { error in
            XCTAssertEqual((error as? ConfigError)?.path, "telemetry.accessLog.format")
        }
    }
}
