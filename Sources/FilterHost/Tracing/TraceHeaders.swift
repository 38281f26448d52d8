import NIOHTTP1

/// Reads and writes trace context in the two forms Istio's proxies speak: W3C Trace Context
/// (`traceparent`, `tracestate`) and Zipkin's B3 (`x-b3-*` headers, or the single `b3`).
/// Anything malformed is ignored, so it is replaced by a fresh context and never forwarded.
public enum TraceHeaders {
    /// Every header this proxy rewrites on each hop.
    public static let names = ["traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid",
                               "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"]
    /// Longest `tracestate` carried on (W3C lets vendors truncate; 512 is its suggested floor).
    static let maxTraceStateLength = 512
    /// Longer `traceparent` values are refused outright: W3C's version 00 is 55 characters,
    /// future versions may append fields, but nothing legitimate needs more.
    static let maxTraceParentLength = 256

    /// The incoming context: a valid `traceparent` wins, then `b3`, then the `x-b3-*` headers.
    public static func extract(_ headers: HTTPHeaders) -> IncomingTrace? {
        if headers[canonicalForm: "traceparent"].count == 1, let v = headers.first(name: "traceparent"),
           var trace = parseTraceParent(v) {
            let states = headers["tracestate"]
            let state = states.joined(separator: ",")
            if !states.isEmpty, state.utf8.count <= maxTraceStateLength { trace.traceState = state }
            return trace
        }
        if let v = headers.first(name: "b3"), let trace = parseB3Single(v) { return trace }
        return parseB3Multi(headers)
    }

    /// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`; a higher version may add
    /// `-<more>` after the flags. Version ff and all-zero ids are invalid.
    public static func parseTraceParent(_ value: String) -> IncomingTrace? {
        let u = Array(value.utf8)
        guard u.count >= 55, u.count <= maxTraceParentLength,
              u[2] == UInt8(ascii: "-"), u[35] == UInt8(ascii: "-"), u[52] == UInt8(ascii: "-"),
              let version = Hex.parse(u[0..<2], count: 2), version != 0xff,
              let hi = Hex.parse(u[3..<19], count: 16), let lo = Hex.parse(u[19..<35], count: 16),
              let parent = Hex.parse(u[36..<52], count: 16), let flags = Hex.parse(u[53..<55], count: 2),
              hi | lo != 0, parent != 0 else { return nil }
        if u.count > 55 { guard version != 0, u[55] == UInt8(ascii: "-") else { return nil } }
        return IncomingTrace(traceIDHigh: hi, traceIDLow: lo, parentSpanID: parent, sampled: flags & 1 == 1)
    }

    /// `{trace id}-{span id}[-{sampling}[-{parent span id}]]`. A bare sampling state
    /// (`0`, `1`, `d`) carries no ids; the caller's decision is then taken for a new trace.
    public static func parseB3Single(_ value: String) -> IncomingTrace? {
        guard value.utf8.count <= 68 else { return nil }
        let parts = value.utf8.split(separator: UInt8(ascii: "-"), omittingEmptySubsequences: false)
        guard parts.count >= 2, parts.count <= 4, let (hi, lo) = traceID(parts[0]),
              let span = Hex.parse(parts[1], count: 16), span != 0 else { return nil }
        var sampled: Bool?
        if parts.count >= 3 {
            guard let s = b3Sampling(String(decoding: parts[2], as: UTF8.self)) else { return nil }
            sampled = s
        }
        if parts.count == 4 { guard Hex.parse(parts[3], count: 16) != nil else { return nil } }
        var trace = IncomingTrace(traceIDHigh: hi, traceIDLow: lo, parentSpanID: span, sampled: sampled)
        trace.usedB3Single = true
        return trace
    }

    public static func parseB3Multi(_ headers: HTTPHeaders) -> IncomingTrace? {
        guard let t = headers.first(name: "x-b3-traceid"), let (hi, lo) = traceID(t.utf8),
              let s = headers.first(name: "x-b3-spanid"), let span = Hex.parse(s.utf8, count: 16), span != 0
        else { return nil }
        var sampled = headers.first(name: "x-b3-sampled").flatMap(b3Sampling)
        if headers.first(name: "x-b3-flags") == "1" { sampled = true }  // debug
        return IncomingTrace(traceIDHigh: hi, traceIDLow: lo, parentSpanID: span, sampled: sampled)
    }

    /// The sampling decision a request carries without a trace (`x-b3-sampled` or a bare `b3`).
    public static func samplingOnly(_ headers: HTTPHeaders) -> Bool? {
        if let b3 = headers.first(name: "b3"), b3.utf8.count == 1 { return b3Sampling(b3) }
        if headers.first(name: "x-b3-flags") == "1" { return true }
        return headers.first(name: "x-b3-sampled").flatMap(b3Sampling)
    }

    /// Replaces every trace header with `context`: `traceparent` (and `tracestate`), the
    /// `x-b3-*` set, and `b3` when the caller used it.
    public static func write(_ context: TraceContext, into headers: inout HTTPHeaders, b3Single: Bool) {
        for name in names { headers.remove(name: name) }
        let trace = context.traceIDHex, span = context.spanIDHex
        headers.add(name: "traceparent", value: "00-\(trace)-\(span)-\(context.sampled ? "01" : "00")")
        if let state = context.traceState { headers.add(name: "tracestate", value: state) }
        let b3Trace = context.traceIDHigh == 0 ? Hex.of(context.traceIDLow) : trace
        headers.add(name: "x-b3-traceid", value: b3Trace)
        headers.add(name: "x-b3-spanid", value: span)
        if let parent = context.parentSpanID { headers.add(name: "x-b3-parentspanid", value: Hex.of(parent)) }
        headers.add(name: "x-b3-sampled", value: context.sampled ? "1" : "0")
        if b3Single {
            var single = "\(b3Trace)-\(span)-\(context.sampled ? "1" : "0")"
            if let parent = context.parentSpanID { single += "-" + Hex.of(parent) }
            headers.add(name: "b3", value: single)
        }
    }

    /// B3 trace ids are 16 or 32 hex digits.
    private static func traceID<S: Collection>(_ s: S) -> (UInt64, UInt64)? where S.Element == UInt8 {
        switch s.count {
        case 16:
            guard let lo = Hex.parse(s, count: 16), lo != 0 else { return nil }
            return (0, lo)
        case 32:
            let mid = s.index(s.startIndex, offsetBy: 16)
            guard let hi = Hex.parse(s[..<mid], count: 16), let lo = Hex.parse(s[mid...], count: 16),
                  hi | lo != 0 else { return nil }
            return (hi, lo)
        default: return nil
        }
    }

    private static func b3Sampling(_ v: String) -> Bool? {
        switch v {
        case "1", "d", "true": return true
        case "0", "false": return false
        default: return nil
        }
    }
}
