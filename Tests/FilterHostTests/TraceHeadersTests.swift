@testable import FilterHost
import MeshAPI
import NIOHTTP1
import XCTest

/// Parsing and writing W3C Trace Context and B3, and what a hop does with them.
final class TraceHeadersTests: XCTestCase {
    private let trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    private let parent = "00f067aa0ba902b7"

    func testValidTraceParent() throws {
        let t = try XCTUnwrap(TraceHeaders.parseTraceParent("00-\(trace)-\(parent)-01"))
        XCTAssertEqual(Hex.of(t.traceIDHigh) + Hex.of(t.traceIDLow), trace)
        XCTAssertEqual(Hex.of(t.parentSpanID), parent)
        XCTAssertEqual(t.sampled, true)
        XCTAssertEqual(TraceHeaders.parseTraceParent("00-\(trace)-\(parent)-00")?.sampled, false)
        // A future version may append fields after a dash.
        XCTAssertNotNil(TraceHeaders.parseTraceParent("01-\(trace)-\(parent)-01-extra"))
    }

    func testInvalidTraceParents() {
        let bad = [
            "",
            "00-\(trace)-\(parent)",                                   // no flags
            "00-\(trace.uppercased())-\(parent)-01",                   // uppercase hex
            "00-00000000000000000000000000000000-\(parent)-01",        // zero trace id
            "00-\(trace)-0000000000000000-01",                         // zero span id
            "ff-\(trace)-\(parent)-01",                                // forbidden version
            "00-\(trace)-\(parent)-01-extra",                          // version 00 has nothing after
            "00-\(trace)-\(parent)-0g",                                // not hex
            "00_\(trace)-\(parent)-01",
            "01-\(trace)-\(parent)-01" + String(repeating: "-x", count: 200),  // huge
        ]
        for v in bad { XCTAssertNil(TraceHeaders.parseTraceParent(v), v) }
    }

    func testB3SingleForms() throws {
        let full = try XCTUnwrap(TraceHeaders.parseB3Single("\(trace)-\(parent)-1-0000000000000001"))
        XCTAssertEqual(full.sampled, true)
        XCTAssertTrue(full.usedB3Single)
        let short = try XCTUnwrap(TraceHeaders.parseB3Single("a3ce929d0e0e4736-\(parent)"))
        XCTAssertEqual(short.traceIDHigh, 0)
        XCTAssertNil(short.sampled)
        XCTAssertEqual(TraceHeaders.parseB3Single("\(trace)-\(parent)-d")?.sampled, true)
        XCTAssertEqual(TraceHeaders.parseB3Single("\(trace)-\(parent)-0")?.sampled, false)
        for v in ["0", "1", "\(trace)", "\(trace)-\(parent)-x", "\(trace)-123", "abc-\(parent)"] {
            XCTAssertNil(TraceHeaders.parseB3Single(v), v)
        }
    }

    func testB3MultiAndDebugFlag() throws {
        var h = HTTPHeaders([("x-b3-traceid", trace), ("x-b3-spanid", parent), ("x-b3-sampled", "0")])
        XCTAssertEqual(TraceHeaders.parseB3Multi(h)?.sampled, false)
        h.replaceOrAdd(name: "x-b3-flags", value: "1")
        XCTAssertEqual(TraceHeaders.parseB3Multi(h)?.sampled, true)
        XCTAssertNil(TraceHeaders.parseB3Multi(HTTPHeaders([("x-b3-traceid", trace)])))
        XCTAssertNil(TraceHeaders.parseB3Multi(HTTPHeaders([("x-b3-traceid", "xyz"), ("x-b3-spanid", parent)])))
    }

    func testTraceParentWinsOverB3() throws {
        let other = "11111111111111111111111111111111"
        let h = HTTPHeaders([("b3", "\(other)-\(parent)-1"), ("traceparent", "00-\(trace)-\(parent)-01"),
                             ("tracestate", "vendor=x")])
        let t = try XCTUnwrap(TraceHeaders.extract(h))
        XCTAssertEqual(Hex.of(t.traceIDHigh) + Hex.of(t.traceIDLow), trace)
        XCTAssertEqual(t.traceState, "vendor=x")
    }

    /// A hop keeps the trace id, opens a new span under the caller's and rewrites every form.
    func testHopContinuesTheTrace() throws {
        let tracer = Tracer(config: TracingConfig(samplingPercentage: 0))
        var random = RequestIDGenerator()
        var h = HTTPHeaders([("traceparent", "00-\(trace)-\(parent)-01"), ("tracestate", "a=1"),
                             ("x-b3-traceid", "ffffffffffffffff"), ("x-b3-spanid", "ffffffffffffffff")])
        let ctx = tracer.begin(&h, random: &random)
        XCTAssertEqual(ctx.traceIDHex, trace)
        XCTAssertEqual(ctx.parentSpanID.map(Hex.of), parent)
        XCTAssertNotEqual(ctx.spanIDHex, parent)
        XCTAssertTrue(ctx.sampled, "the caller's decision wins over 0 %")
        XCTAssertEqual(h["traceparent"], ["00-\(trace)-\(ctx.spanIDHex)-01"])
        XCTAssertEqual(h["tracestate"], ["a=1"])
        XCTAssertEqual(h["x-b3-traceid"], [trace])
        XCTAssertEqual(h["x-b3-spanid"], [ctx.spanIDHex])
        XCTAssertEqual(h["x-b3-parentspanid"], [parent])
        XCTAssertEqual(h["x-b3-sampled"], ["1"])
        XCTAssertFalse(h.contains(name: "b3"))
    }

    /// Garbage is never forwarded: a huge or malformed traceparent gives way to a new trace.
    func testMalformedTraceParentIsReplaced() {
        let tracer = Tracer(config: TracingConfig(samplingPercentage: 100))
        var random = RequestIDGenerator()
        let huge = "00-" + String(repeating: "a", count: 8000)
        for bad in [huge, "00-\(trace)-\(parent)-01-x", "garbage"] {
            var h = HTTPHeaders([("traceparent", bad), ("tracestate", "evil=1")])
            let ctx = tracer.begin(&h, random: &random)
            XCTAssertNil(ctx.parentSpanID)
            XCTAssertTrue(ctx.sampled)
            XCTAssertEqual(h["traceparent"], ["00-\(ctx.traceIDHex)-\(ctx.spanIDHex)-01"])
            XCTAssertFalse(h.contains(name: "tracestate"), "state of a refused parent is not carried")
        }
    }

    func testSingleB3AnsweredInKindAndSamplingOnly() throws {
        let tracer = Tracer(config: TracingConfig(samplingPercentage: 100))
        var random = RequestIDGenerator()
        var h = HTTPHeaders([("b3", "\(trace)-\(parent)-0")])
        let ctx = tracer.begin(&h, random: &random)
        XCTAssertFalse(ctx.sampled)
        XCTAssertEqual(h["b3"], ["\(trace)-\(ctx.spanIDHex)-0-\(parent)"])
        var denied = HTTPHeaders([("b3", "0")])
        XCTAssertFalse(tracer.begin(&denied, random: &random).sampled, "a bare b3: 0 is a decision to keep")
    }

    func testSamplingPercentage() {
        var random = RequestIDGenerator()
        for (pct, expect) in [(0.0, 0...0), (100.0, 1000...1000), (50.0, 400...600)] {
            let tracer = Tracer(config: TracingConfig(samplingPercentage: pct))
            var sampled = 0
            for _ in 0..<1000 {
                var h = HTTPHeaders()
                if tracer.begin(&h, random: &random).sampled { sampled += 1 }
            }
            XCTAssertTrue(expect.contains(sampled), "\(pct)%: \(sampled)")
        }
    }

    /// OTLP bytes: field tags and lengths as opentelemetry-proto defines them.
    func testOTLPEncodingOfOneSpan() {
        let ctx = TraceContext(traceIDHigh: 1, traceIDLow: 2, spanID: 3, parentSpanID: 4, sampled: true)
        let span = SpanRecord(context: ctx, name: "n", kind: .server, startUnixNano: 5, endUnixNano: 6,
                              tags: [("k", "v")], isError: false)
        let bytes = OTLPEncoder.encode(span).bytes
        XCTAssertEqual(Array(bytes.prefix(2)), [0x0A, 16])                     // trace_id, 16 bytes
        XCTAssertEqual(bytes[2 + 7], 1)
        XCTAssertEqual(bytes[2 + 15], 2)
        XCTAssertEqual(Array(bytes[18...19]), [0x12, 8])                       // span_id
        XCTAssertEqual(Array(bytes[28...29]), [0x22, 8])                       // parent_span_id
        XCTAssertEqual(Array(bytes[38...40]), [0x2A, 1, UInt8(ascii: "n")])    // name
        XCTAssertEqual(Array(bytes[41...42]), [0x30, 2])                       // kind SERVER
        XCTAssertEqual(bytes[43], 0x39)                                        // start, fixed64
    }
}
