/// Encodes OTLP's `ExportTraceServiceRequest` (opentelemetry-proto, trace/v1) by hand: a
/// proxy fills a handful of fields, so a small protobuf writer is cheaper than generated code.
/// Field numbers are those of `opentelemetry/proto/{collector/trace,trace,common,resource}/v1`.
enum OTLPEncoder {
    static func exportRequest(_ spans: [SpanRecord], resource: [(String, String)], scope: String) -> [UInt8] {
        var scopeSpans = ProtoWriter()
        var scopeMessage = ProtoWriter()
        scopeMessage.string(1, scope)                               // InstrumentationScope.name
        scopeSpans.message(1, scopeMessage)                         // ScopeSpans.scope
        for span in spans { scopeSpans.message(2, encode(span)) }   // ScopeSpans.spans
        var resourceMessage = ProtoWriter()
        for (k, v) in resource { resourceMessage.message(1, keyValue(k, v)) }  // Resource.attributes
        var resourceSpans = ProtoWriter()
        resourceSpans.message(1, resourceMessage)                   // ResourceSpans.resource
        resourceSpans.message(2, scopeSpans)                        // ResourceSpans.scope_spans
        var request = ProtoWriter()
        request.message(1, resourceSpans)                           // ExportTraceServiceRequest.resource_spans
        return request.bytes
    }

    static func encode(_ s: SpanRecord) -> ProtoWriter {
        var w = ProtoWriter()
        w.bytes(1, bigEndian(s.context.traceIDHigh) + bigEndian(s.context.traceIDLow))  // trace_id
        w.bytes(2, bigEndian(s.context.spanID))                                          // span_id
        if let state = s.context.traceState { w.string(3, state) }                       // trace_state
        if let parent = s.context.parentSpanID { w.bytes(4, bigEndian(parent)) }         // parent_span_id
        w.string(5, s.name)                                                              // name
        w.varint(6, UInt64(s.kind.rawValue))                                             // kind
        w.fixed64(7, s.startUnixNano)                                                    // start_time_unix_nano
        w.fixed64(8, s.endUnixNano)                                                      // end_time_unix_nano
        for (k, v) in s.tags { w.message(9, keyValue(k, v)) }                            // attributes
        var status = ProtoWriter()
        status.varint(3, s.isError ? 2 : 0)                                              // Status.code
        w.message(15, status)                                                            // status
        return w
    }

    static func keyValue(_ key: String, _ value: String) -> ProtoWriter {
        var any = ProtoWriter()
        any.string(1, value)        // AnyValue.string_value
        var kv = ProtoWriter()
        kv.string(1, key)           // KeyValue.key
        kv.message(2, any)          // KeyValue.value
        return kv
    }

    private static func bigEndian(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> UInt64(56 - 8 * $0)) } }
}

/// Protobuf wire format: tags, varints, fixed64 and length-delimited fields.
struct ProtoWriter {
    private(set) var bytes: [UInt8] = []

    mutating func varint(_ field: Int, _ v: UInt64) {
        tag(field, 0)
        raw(v)
    }

    mutating func fixed64(_ field: Int, _ v: UInt64) {
        tag(field, 1)
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(8 * i))) }
    }

    mutating func bytes(_ field: Int, _ v: [UInt8]) {
        tag(field, 2)
        raw(UInt64(v.count))
        bytes.append(contentsOf: v)
    }

    mutating func string(_ field: Int, _ v: String) { bytes(field, Array(v.utf8)) }
    mutating func message(_ field: Int, _ m: ProtoWriter) { bytes(field, m.bytes) }

    private mutating func tag(_ field: Int, _ wireType: UInt64) { raw(UInt64(field) << 3 | wireType) }

    private mutating func raw(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }
}
