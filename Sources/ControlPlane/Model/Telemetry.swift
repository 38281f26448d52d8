/// telemetry.istio.io Telemetry (v1, v1alpha1): metrics, access logging and tracing for the
/// mesh (in the root namespace, no selector), a namespace, or the workloads a selector picks.
public struct Telemetry: NodeDecodable, Equatable {
    public static let workloadModes = ["CLIENT_AND_SERVER", "CLIENT", "SERVER"]
    public static let metricNames = ["ALL_METRICS", "REQUEST_COUNT", "REQUEST_DURATION", "REQUEST_SIZE", "RESPONSE_SIZE",
                                     "TCP_OPENED_CONNECTIONS", "TCP_CLOSED_CONNECTIONS", "TCP_SENT_BYTES",
                                     "TCP_RECEIVED_BYTES", "GRPC_REQUEST_MESSAGES", "GRPC_RESPONSE_MESSAGES"]

    public var selector: LabelSelector?
    public var targetRef: PolicyTargetReference?
    public var targetRefs: [PolicyTargetReference]
    public var tracing: [Tracing]
    public var metrics: [Metrics]
    public var accessLogging: [AccessLogging]

    init(_ r: ObjectReader) {
        selector = r.object("selector")
        targetRef = r.object("targetRef")
        targetRefs = r.objects("targetRefs")
        tracing = r.objects("tracing")
        metrics = r.objects("metrics")
        accessLogging = r.objects("accessLogging")
    }

    public struct ProviderRef: NodeDecodable, Equatable {
        public var name: String
        init(_ r: ObjectReader) { name = r.string("name") ?? "" }
    }

    public struct Tracing: NodeDecodable, Equatable {
        public var mode: String?
        public var providers: [ProviderRef]
        public var randomSamplingPercentage: Double?
        public var disableSpanReporting: Bool?
        public var customTags: [String: CustomTag]
        public var useRequestIdForTraceSampling: Bool?

        init(_ r: ObjectReader) {
            mode = r.object("match", as: ModeSelector.self)?.mode
            providers = r.objects("providers")
            randomSamplingPercentage = r.double("randomSamplingPercentage")
            disableSpanReporting = r.bool("disableSpanReporting")
            customTags = r.objectMap("customTags")
            useRequestIdForTraceSampling = r.bool("useRequestIdForTraceSampling")
            for key in ["enableIstioTags", "disableContextPropagation"] { _ = r.node(key) }
        }
    }

    public struct CustomTag: NodeDecodable, Equatable {
        public var literal: String?
        public var header: String?
        public var environment: String?
        public var defaultValue: String?
        public var formatter: String?

        init(_ r: ObjectReader) {
            literal = r.object("literal", as: Value.self)?.value
            let h = r.object("header", as: Named.self)
            let e = r.object("environment", as: Named.self)
            header = h?.name
            environment = e?.name
            defaultValue = h?.defaultValue ?? e?.defaultValue
            formatter = r.object("formatter", as: Value.self)?.value
        }

        struct Value: NodeDecodable {
            var value: String?
            init(_ r: ObjectReader) { value = r.string("value") }
        }

        struct Named: NodeDecodable {
            var name: String?
            var defaultValue: String?
            init(_ r: ObjectReader) {
                name = r.string("name")
                defaultValue = r.string("defaultValue")
            }
        }
    }

    public struct Metrics: NodeDecodable, Equatable {
        public var providers: [ProviderRef]
        public var overrides: [Override]

        init(_ r: ObjectReader) {
            providers = r.objects("providers")
            overrides = r.objects("overrides")
            _ = r.node("reportingInterval")
        }
    }

    public struct Override: NodeDecodable, Equatable {
        public var metric: String?
        public var customMetric: String?
        public var mode: String?
        public var disabled: Bool?
        public var tagOverrides: [String: TagOverride]

        init(_ r: ObjectReader) {
            let m = r.object("match", as: MetricSelector.self)
            metric = m?.metric
            customMetric = m?.customMetric
            mode = m?.mode
            disabled = r.bool("disabled")
            tagOverrides = r.objectMap("tagOverrides")
        }

        struct MetricSelector: NodeDecodable {
            var metric: String?
            var customMetric: String?
            var mode: String?
            init(_ r: ObjectReader) {
                metric = r.enumeration("metric", Telemetry.metricNames)
                customMetric = r.string("customMetric")
                mode = r.enumeration("mode", Telemetry.workloadModes)
            }
        }
    }

    public struct TagOverride: NodeDecodable, Equatable {
        public var operation: String?
        public var value: String?

        init(_ r: ObjectReader) {
            operation = r.enumeration("operation", ["UPSERT", "REMOVE"])
            value = r.string("value")
        }
    }

    public struct AccessLogging: NodeDecodable, Equatable {
        public var mode: String?
        public var providers: [ProviderRef]
        public var disabled: Bool?
        public var filter: String?

        init(_ r: ObjectReader) {
            mode = r.object("match", as: ModeSelector.self)?.mode
            providers = r.objects("providers")
            disabled = r.bool("disabled")
            filter = r.object("filter", as: Filter.self)?.expression
        }

        struct Filter: NodeDecodable {
            var expression: String?
            init(_ r: ObjectReader) { expression = r.string("expression") }
        }
    }

    struct ModeSelector: NodeDecodable {
        var mode: String?
        init(_ r: ObjectReader) { mode = r.enumeration("mode", Telemetry.workloadModes) }
    }
}
