/// A finished span, as the exporter ships it (OTLP's `Span`, reduced to what a proxy fills).
public struct SpanRecord: Sendable, Equatable {
    public enum Kind: Int, Sendable { case server = 2, client = 3 }

    public var context: TraceContext
    public var name: String
    public var kind: Kind
    public var startUnixNano: UInt64
    public var endUnixNano: UInt64
    /// Tags in the order they were set; values are strings, as Envoy's tags are.
    public var tags: [(String, String)]
    /// OTLP status ERROR (Envoy's `error=true` tag: 5xx or no response).
    public var isError: Bool

    public static func == (a: SpanRecord, b: SpanRecord) -> Bool {
        a.context == b.context && a.name == b.name && a.kind == b.kind && a.startUnixNano == b.startUnixNano
            && a.endUnixNano == b.endUnixNano && a.isError == b.isError
            && a.tags.elementsEqual(b.tags) { $0.0 == $1.0 && $0.1 == $1.1 }
    }
}
