import NIOHTTP1

/// One hop's place in a trace: the trace it belongs to, the span this proxy opens for the
/// stream, the caller's span (its parent) and whether the trace is sampled.
public struct TraceContext: Sendable, Equatable {
    public var traceIDHigh: UInt64
    public var traceIDLow: UInt64
    /// The span this hop opens; sent upstream as the parent of the next hop's span.
    public var spanID: UInt64
    /// The caller's span, nil when this hop starts the trace.
    public var parentSpanID: UInt64?
    public var sampled: Bool
    /// W3C `tracestate`, carried unchanged when it came with a valid `traceparent`.
    public var traceState: String?

    public init(traceIDHigh: UInt64, traceIDLow: UInt64, spanID: UInt64, parentSpanID: UInt64? = nil,
                sampled: Bool, traceState: String? = nil) {
        self.traceIDHigh = traceIDHigh
        self.traceIDLow = traceIDLow
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.sampled = sampled
        self.traceState = traceState
    }

    public var traceIDHex: String { Hex.of(traceIDHigh) + Hex.of(traceIDLow) }
    public var spanIDHex: String { Hex.of(spanID) }
}

/// The trace a request arrived with, before this hop's span is added.
public struct IncomingTrace: Sendable, Equatable {
    public var traceIDHigh: UInt64
    public var traceIDLow: UInt64
    public var parentSpanID: UInt64
    /// nil: the caller left the decision to us.
    public var sampled: Bool?
    public var traceState: String?
    /// The caller used B3's single `b3` header: answer in the same form too.
    public var usedB3Single = false
}

/// Lowercase hex of fixed width, and its strict inverse.
enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    static func of(_ v: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { out in
            for i in 0..<16 { out[i] = digits[Int((v >> UInt64((15 - i) * 4)) & 0xF)] }
            return 16
        }
    }

    /// Exactly `count` (≤ 16) lowercase hex digits, else nil. W3C forbids uppercase.
    static func parse<S: Collection>(_ s: S, count: Int) -> UInt64? where S.Element == UInt8 {
        guard s.count == count, count <= 16 else { return nil }
        var v: UInt64 = 0
        for c in s {
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            default: return nil
            }
            v = v << 4 | UInt64(d)
        }
        return v
    }
}
