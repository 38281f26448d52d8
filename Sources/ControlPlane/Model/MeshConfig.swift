import MeshAPI

/// Istio's MeshConfig (`istio.mesh.v1alpha1.MeshConfig`): the mesh-wide settings istiod reads
/// from its `mesh` file (the `istio` ConfigMap's `mesh` key). meshd reads it from the file given
/// to `--mesh-config`; every field of the proto is known, and the ones meshd does not enforce
/// are warned (FieldSupport.meshConfig). Defaults are Istio's.
public struct MeshConfig: NodeDecodable, Equatable {
    public var trustDomain: String
    public var trustDomainAliases: [String]
    public var rootNamespace: String
    /// "" (Istio's default): no access log; "/dev/stdout": each proxy logs to its stdout.
    public var accessLogFile: String?
    public var accessLogEncoding: String?
    public var accessLogFormat: String?
    public var enableTracing: Bool?
    public var defaultConfig: ProxyConfig?
    /// ALLOW_ANY (Istio's default) or REGISTRY_ONLY.
    public var outboundTrafficPolicyMode: String?
    public var enableAutoMtls: Bool?
    public var extensionProviders: [ExtensionProvider]
    public var defaultProviders: DefaultProviders?

    public static let defaultTrustDomain = "cluster.local"
    public static let defaultRootNamespace = "istio-system"

    public init() {
        trustDomain = Self.defaultTrustDomain
        trustDomainAliases = []
        rootNamespace = Self.defaultRootNamespace
        extensionProviders = []
    }

    init(_ r: ObjectReader) {
        trustDomain = r.string("trustDomain").flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultTrustDomain
        trustDomainAliases = r.strings("trustDomainAliases")
        rootNamespace = r.string("rootNamespace").flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultRootNamespace
        accessLogFile = r.string("accessLogFile")
        accessLogEncoding = r.enumeration("accessLogEncoding", ["TEXT", "JSON"])
        accessLogFormat = r.string("accessLogFormat")
        if let format = accessLogFormat, !format.isEmpty { Self.checkFormat(format, r, "accessLogFormat") }
        enableTracing = r.bool("enableTracing")
        defaultConfig = r.object("defaultConfig")
        outboundTrafficPolicyMode = r.node("outboundTrafficPolicy") == nil ? nil
            : r.object("outboundTrafficPolicy", as: OutboundTrafficPolicy.self)?.mode
        enableAutoMtls = r.bool("enableAutoMtls")
        extensionProviders = r.objects("extensionProviders")
        defaultProviders = r.object("defaultProviders")
        // The rest of the proto: known, kept unread, warned by FieldSupport.meshConfig.
        for key in MeshConfig.otherFields { _ = r.node(key) }
    }

    /// A format string the proxies could not render is refused at its line.
    static func checkFormat(_ format: String, _ r: ObjectReader, _ key: String) {
        do { _ = try AccessLogFormat(parsing: format) } catch { r.ctx.report(r.child(key), "invalid access log format: \(error)") }
    }

    /// The extension provider named `name`, if the mesh config declares one.
    public func provider(named name: String) -> ExtensionProvider? {
        extensionProviders.first { $0.name == name }
    }

    static let otherFields = [
        "proxyListenPort", "proxyInboundListenPort", "proxyHttpPort", "connectTimeout", "hboneIdleTimeout",
        "protocolDetectionTimeout", "tcpKeepalive", "ingressClass", "ingressService", "ingressControllerMode",
        "ingressSelector", "enableEnvoyAccessLogService", "disableEnvoyListenerLog", "inboundTrafficPolicy",
        "configSources", "caCertificates", "defaultServiceExportTo", "defaultVirtualServiceExportTo",
        "defaultDestinationRuleExportTo", "localityLbSetting", "zoneAwareLbSetting", "dnsRefreshRate",
        "h2UpgradePolicy", "inboundClusterStatName", "outboundClusterStatName", "certificates", "serviceSettings",
        "serviceScopeConfigs", "enablePrometheusMerge", "verifyCertificateAtClient", "ca", "discoverySelectors",
        "pathNormalization", "defaultHttpRetryPolicy", "meshMTLS", "tlsDefaults", "defaultTrafficPolicy",
        "serviceEntryVisibility",
    ]

    struct OutboundTrafficPolicy: NodeDecodable {
        var mode: String?
        init(_ r: ObjectReader) { mode = r.enumeration("mode", ["REGISTRY_ONLY", "ALLOW_ANY"]) }
    }

    /// `defaultConfig` (Istio's ProxyConfig): read whole, so its fields are known; the few
    /// meshd applies are typed.
    public struct ProxyConfig: NodeDecodable, Equatable {
        /// `tracing.sampling`, percent.
        public var tracingSampling: Double?

        init(_ r: ObjectReader) {
            tracingSampling = r.object("tracing", as: Tracing.self)?.sampling
            for key in Self.otherFields { _ = r.node(key) }
        }

        struct Tracing: NodeDecodable {
            var sampling: Double?
            init(_ r: ObjectReader) {
                sampling = r.double("sampling")
                for key in ["zipkin", "lightstep", "datadog", "stackdriver", "openCensusAgent", "customTags",
                            "maxPathTagLength", "tlsSettings", "enableIstioTags"] { _ = r.node(key) }
            }
        }

        static let otherFields = [
            "configPath", "binaryPath", "serviceCluster", "drainDuration", "parentShutdownDuration",
            "discoveryAddress", "discoveryRefreshDelay", "zipkinAddress", "statsdUdpAddress", "envoyMetricsServiceAddress",
            "proxyAdminPort", "availabilityZone", "controlPlaneAuthPolicy", "customConfigFile", "statNameLength",
            "concurrency", "proxyBootstrapTemplatePath", "interceptionMode", "envoyAccessLogService",
            "envoyMetricsService", "sds", "extraStatTags", "gatewayTopology", "terminationDrainDuration", "meshId",
            "readinessProbe", "proxyStatsMatcher", "holdApplicationUntilProxyStarts", "caCertificatesPem", "image",
            "privateKeyProvider", "proxyHeaders", "fileFlushInterval", "fileFlushMinSizeKb", "proxyMetadata",
            "runtimeValues", "statusPort", "tracingServiceName",
        ]
    }

    /// `defaultProviders`: the providers used where no Telemetry resource names one.
    public struct DefaultProviders: NodeDecodable, Equatable {
        public var tracing: [String]
        public var metrics: [String]
        public var accessLogging: [String]

        init(_ r: ObjectReader) {
            tracing = r.strings("tracing")
            metrics = r.strings("metrics")
            accessLogging = r.strings("accessLogging")
        }
    }
}

/// One `extensionProviders` entry: a name and exactly one provider.
public struct ExtensionProvider: NodeDecodable, Equatable {
    public enum Kind: Equatable, Sendable {
        case envoyExtAuthzHttp(ExtAuthzHTTP)
        case envoyExtAuthzGrpc(ExtAuthzGRPC)
        case opentelemetry(ServiceAddress)
        case zipkin(ServiceAddress)
        case prometheus
        case envoyFileAccessLog(FileAccessLog)
        /// meshd's own: a CUSTOM authorizer that is a LuaPlugin, run in the proxy.
        case meshdLuaPlugin(LuaAuthorizer)
        /// A provider kind meshd does not implement (datadog, skywalking, stackdriver, envoyOtelAls, …).
        case unsupported(String)
    }

    public var name: String
    public var kind: Kind?

    static let unsupportedKinds = ["lightstep", "datadog", "stackdriver", "opencensus", "skywalking",
                                   "envoyHttpAls", "envoyTcpAls", "envoyOtelAls", "sds"]

    init(_ r: ObjectReader) {
        name = r.string("name") ?? ""
        if name.isEmpty { r.ctx.report(r.child("name"), "required field is missing") }
        var kinds: [Kind] = []
        if let v: ExtAuthzHTTP = r.object("envoyExtAuthzHttp") { kinds.append(.envoyExtAuthzHttp(v)) }
        if let v: ExtAuthzGRPC = r.object("envoyExtAuthzGrpc") { kinds.append(.envoyExtAuthzGrpc(v)) }
        if let v: ServiceAddress = r.object("opentelemetry") { kinds.append(.opentelemetry(v)) }
        if let v: ServiceAddress = r.object("zipkin") { kinds.append(.zipkin(v)) }
        if r.node("prometheus") != nil { kinds.append(.prometheus) }
        if let v: FileAccessLog = r.object("envoyFileAccessLog") { kinds.append(.envoyFileAccessLog(v)) }
        if let v: LuaAuthorizer = r.object("meshdLuaPlugin") { kinds.append(.meshdLuaPlugin(v)) }
        for key in Self.unsupportedKinds where r.node(key) != nil { kinds.append(.unsupported(key)) }
        if kinds.count > 1 {
            r.ctx.report(r.path, "an extension provider has exactly one provider, got \(kinds.count)")
        }
        kind = kinds.first
    }

    /// A provider's `service` (host name, `ns/host` allowed) and `port`; the other fields of
    /// tracing providers are read so they are known.
    public struct ServiceAddress: NodeDecodable, Equatable, Sendable {
        public var service: String
        public var port: Int
        public var maxTagLength: Int?

        init(_ r: ObjectReader) {
            service = r.string("service") ?? ""
            port = r.int("port") ?? 0
            maxTagLength = r.int("maxTagLength")
            for key in ["http", "grpc", "resourceDetectors", "dynatraceSampler", "serviceAttributeEnrichment",
                        "path", "traceContextOption", "timeout", "headers", "enable64bitTraceId"] { _ = r.node(key) }
            if service.isEmpty { r.ctx.report(r.child("service"), "required field is missing") }
            if port <= 0 || port > 65535 { r.ctx.report(r.child("port"), "port must be in 1..65535") }
        }
    }

    public struct ExtAuthzHTTP: NodeDecodable, Equatable, Sendable {
        public var service: String
        public var port: Int
        public var timeoutMs: Int?
        public var pathPrefix: String?
        public var failOpen: Bool
        public var statusOnError: String?
        public var includeRequestHeadersInCheck: [String]
        public var includeAdditionalHeadersInCheck: [String: String]
        public var headersToUpstreamOnAllow: [String]
        public var headersToDownstreamOnDeny: [String]
        public var headersToDownstreamOnAllow: [String]
        public var includeRequestBodyInCheck: RequestBody?

        init(_ r: ObjectReader) {
            service = r.string("service") ?? ""
            port = r.int("port") ?? 0
            timeoutMs = r.durationMs("timeout")
            pathPrefix = r.string("pathPrefix")
            failOpen = r.bool("failOpen") ?? false
            statusOnError = r.string("statusOnError")
            includeRequestHeadersInCheck = r.strings("includeRequestHeadersInCheck")
            includeAdditionalHeadersInCheck = r.stringMap("includeAdditionalHeadersInCheck")
            headersToUpstreamOnAllow = r.strings("headersToUpstreamOnAllow")
            headersToDownstreamOnDeny = r.strings("headersToDownstreamOnDeny")
            headersToDownstreamOnAllow = r.strings("headersToDownstreamOnAllow")
            includeRequestBodyInCheck = r.object("includeRequestBodyInCheck")
            for key in ["clearRouteCache", "includeHeadersInCheck"] { _ = r.node(key) }
            if service.isEmpty { r.ctx.report(r.child("service"), "required field is missing") }
            if port <= 0 || port > 65535 { r.ctx.report(r.child("port"), "port must be in 1..65535") }
        }
    }

    public struct ExtAuthzGRPC: NodeDecodable, Equatable, Sendable {
        public var service: String
        public var port: Int
        public var timeoutMs: Int?
        public var failOpen: Bool
        public var statusOnError: String?
        public var includeRequestBodyInCheck: RequestBody?

        init(_ r: ObjectReader) {
            service = r.string("service") ?? ""
            port = r.int("port") ?? 0
            timeoutMs = r.durationMs("timeout")
            failOpen = r.bool("failOpen") ?? false
            statusOnError = r.string("statusOnError")
            includeRequestBodyInCheck = r.object("includeRequestBodyInCheck")
            _ = r.node("clearRouteCache")
            if service.isEmpty { r.ctx.report(r.child("service"), "required field is missing") }
            if port <= 0 || port > 65535 { r.ctx.report(r.child("port"), "port must be in 1..65535") }
        }
    }

    /// `meshdLuaPlugin` (meshd's, beyond Istio): the LuaPlugin `plugin` (`[<namespace>/]<name>`;
    /// a bare name is in the root namespace) decides CUSTOM policies in the proxy itself, with
    /// `failOpen` and `statusOnError` as `envoyExtAuthzHttp` has them.
    public struct LuaAuthorizer: NodeDecodable, Equatable, Sendable {
        public var plugin: String
        public var failOpen: Bool
        public var statusOnError: String?
        /// Where `plugin` is written (the mesh config file sets it), for a reference that
        /// names no LuaPlugin.
        public var pluginPath: String
        public var pluginLocation: SourceLocation?

        init(_ r: ObjectReader) {
            plugin = r.string("plugin") ?? ""
            pluginPath = r.child("plugin")
            failOpen = r.bool("failOpen") ?? false
            statusOnError = r.string("statusOnError")
            if plugin.isEmpty { r.ctx.report(r.child("plugin"), "required field is missing") }
            let parts = plugin.split(separator: "/", omittingEmptySubsequences: false)
            if !plugin.isEmpty && (parts.count > 2 || parts.contains { $0.isEmpty }) {
                r.ctx.report(r.child("plugin"), "must be <namespace>/<name> or <name> of a LuaPlugin")
            }
            if let s = statusOnError, !(Int(s).map { (100...599).contains($0) } ?? false) {
                r.ctx.report(r.child("statusOnError"), "\"\(s)\" is not an HTTP status")
            }
        }

        /// The LuaPlugin's namespace and name; a bare name is in `rootNamespace`.
        public func reference(rootNamespace: String) -> (namespace: String, name: String) {
            guard let slash = plugin.firstIndex(of: "/") else { return (rootNamespace, plugin) }
            return (String(plugin[..<slash]), String(plugin[plugin.index(after: slash)...]))
        }
    }

    public struct RequestBody: NodeDecodable, Equatable, Sendable {
        public var maxRequestBytes: Int?
        public var allowPartialMessage: Bool
        public var packAsBytes: Bool

        init(_ r: ObjectReader) {
            maxRequestBytes = r.int("maxRequestBytes")
            allowPartialMessage = r.bool("allowPartialMessage") ?? false
            packAsBytes = r.bool("packAsBytes") ?? false
        }
    }

    public struct FileAccessLog: NodeDecodable, Equatable, Sendable {
        public var path: String
        /// `logFormat.text` (Envoy format string); nil with `labels`: JSON.
        public var text: String?
        public var labels: JSONValue?
        public var omitEmptyValues: Bool

        /// Istio's built-in `envoy` provider: stdout, the mesh's format.
        public static let stdout = FileAccessLog(path: "/dev/stdout")

        public init(path: String, text: String? = nil, labels: JSONValue? = nil) {
            self.path = path
            self.text = text
            self.labels = labels
            omitEmptyValues = false
        }

        init(_ r: ObjectReader) {
            path = r.string("path") ?? ""
            omitEmptyValues = r.bool("omitEmptyValues") ?? false
            let format = r.object("logFormat", as: LogFormat.self)
            text = format?.text
            if let text { MeshConfig.checkFormat(text, r, "logFormat") }
            labels = format?.labels
            if case .object(let l)? = labels {
                for (key, value) in l.sorted(by: { $0.key < $1.key }) {
                    guard case .string(let f) = value else {
                        r.ctx.report(r.child("logFormat") + ".labels." + key, "a label's value is a format string")
                        continue
                    }
                    do { _ = try AccessLogFormat(parsing: f) } catch {
                        r.ctx.report(r.child("logFormat") + ".labels." + key, "invalid access log format: \(error)")
                    }
                }
            }
        }

        struct LogFormat: NodeDecodable {
            var text: String?
            var labels: JSONValue?
            init(_ r: ObjectReader) {
                text = r.string("text")
                labels = r.json("labels")
            }
        }
    }
}
