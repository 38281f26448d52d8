import MeshAPI

/// networking.istio.io VirtualService. Durations are read as milliseconds (`timeoutMs` ← `timeout`).
public struct VirtualService: NodeDecodable, Equatable {
    public var hosts: [String]
    public var gateways: [String]
    public var http: [HTTPRoute]
    public var tls: [TLSRoute]
    public var tcp: [TCPRoute]
    public var exportTo: [String]

    init(_ r: ObjectReader) {
        hosts = r.strings("hosts")
        gateways = r.strings("gateways")
        http = r.objects("http")
        tls = r.objects("tls")
        tcp = r.objects("tcp")
        exportTo = r.strings("exportTo")
    }

    /// Bound to sidecars: no gateways, or the reserved `mesh`.
    public var appliesToMesh: Bool { gateways.isEmpty || gateways.contains("mesh") }
    /// Istio's isGateway: bound to gateways, `mesh` not among them.
    public var appliesToGateway: Bool { !gateways.isEmpty && !gateways.contains("mesh") }
}

public struct HTTPRoute: NodeDecodable, Equatable {
    public var name: String?
    public var match: [HTTPMatchRequest]
    public var route: [HTTPRouteDestination]
    public var redirect: HTTPRedirect?
    public var directResponse: HTTPDirectResponse?
    public var delegate: Delegate?
    public var rewrite: HTTPRewrite?
    public var timeoutMs: Int?
    public var retries: HTTPRetry?
    public var fault: HTTPFaultInjection?
    public var mirror: Destination?
    public var mirrorPercentage: Percent?
    public var mirrorPercent: Int?
    public var mirrors: [HTTPMirrorPolicy]
    public var corsPolicy: CorsPolicy?
    public var headers: HeadersSpec?

    init(_ r: ObjectReader) {
        name = r.string("name")
        match = r.objects("match")
        route = r.objects("route")
        redirect = r.object("redirect")
        directResponse = r.object("directResponse")
        delegate = r.object("delegate")
        rewrite = r.object("rewrite")
        timeoutMs = r.durationMs("timeout")
        retries = r.object("retries")
        fault = r.object("fault")
        mirror = r.object("mirror")
        mirrorPercentage = r.object("mirrorPercentage")
        mirrorPercent = r.int("mirrorPercent")
        mirrors = r.objects("mirrors")
        corsPolicy = r.object("corsPolicy")
        headers = r.object("headers")
    }
}

public struct HTTPMatchRequest: NodeDecodable, Equatable {
    public var name: String?
    public var uri: StringMatch?
    public var scheme: StringMatch?
    public var method: StringMatch?
    public var authority: StringMatch?
    public var headers: [String: StringMatch]
    public var withoutHeaders: [String: StringMatch]
    public var queryParams: [String: StringMatch]
    public var port: Int?
    public var sourceLabels: [String: String]
    public var gateways: [String]
    public var ignoreUriCase: Bool?
    public var sourceNamespace: String?
    public var statPrefix: String?

    init(_ r: ObjectReader) {
        name = r.string("name")
        uri = r.object("uri")
        scheme = r.object("scheme")
        method = r.object("method")
        authority = r.object("authority")
        headers = r.objectMap("headers")
        withoutHeaders = r.objectMap("withoutHeaders")
        queryParams = r.objectMap("queryParams")
        port = r.int("port")
        sourceLabels = r.stringMap("sourceLabels")
        gateways = r.strings("gateways")
        ignoreUriCase = r.bool("ignoreUriCase")
        sourceNamespace = r.string("sourceNamespace")
        statPrefix = r.string("statPrefix")
    }

    /// Nothing to match on (a `name` alone does not count).
    public var isEmpty: Bool {
        uri == nil && scheme == nil && method == nil && authority == nil && headers.isEmpty && withoutHeaders.isEmpty
            && queryParams.isEmpty && port == nil && sourceLabels.isEmpty && gateways.isEmpty && ignoreUriCase == nil
            && sourceNamespace == nil
    }
}

public struct Destination: NodeDecodable, Equatable {
    public var host: String?
    public var subset: String?
    public var port: PortSelector?

    public init(host: String? = nil, subset: String? = nil, port: PortSelector? = nil) {
        self.host = host
        self.subset = subset
        self.port = port
    }

    init(_ r: ObjectReader) {
        host = r.string("host")
        subset = r.string("subset")
        port = r.object("port")
    }
}

public struct HTTPRouteDestination: NodeDecodable, Equatable {
    public var destination: Destination?
    public var weight: Int?
    public var headers: HeadersSpec?

    init(_ r: ObjectReader) {
        destination = r.object("destination")
        weight = r.int("weight")
        headers = r.object("headers")
    }
}

public struct HTTPRedirect: NodeDecodable, Equatable {
    public var uri: String?
    public var authority: String?
    public var port: Int?
    public var derivePort: String?
    public var scheme: String?
    public var redirectCode: Int?
    public var prefixRewrite: String?

    init(_ r: ObjectReader) {
        uri = r.string("uri")
        authority = r.string("authority")
        port = r.int("port")
        derivePort = r.enumeration("derivePort", ["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"])
        scheme = r.string("scheme")
        redirectCode = r.int("redirectCode")
        prefixRewrite = r.string("prefixRewrite")
    }
}

public struct HTTPDirectResponse: NodeDecodable, Equatable {
    public struct Body: NodeDecodable, Equatable {
        public var string: String?
        public var bytes: String?

        init(_ r: ObjectReader) {
            string = r.string("string")
            bytes = r.string("bytes")
        }
    }

    public var status: Int?
    public var body: Body?

    init(_ r: ObjectReader) {
        status = r.int("status")
        body = r.object("body")
    }
}

public struct Delegate: NodeDecodable, Equatable {
    public var name: String?
    public var namespace: String?

    init(_ r: ObjectReader) {
        name = r.string("name")
        namespace = r.string("namespace")
    }
}

public struct HTTPRewrite: NodeDecodable, Equatable {
    public struct RegexRewrite: NodeDecodable, Equatable {
        public var match: String?
        public var rewrite: String?

        init(_ r: ObjectReader) {
            match = r.string("match")
            rewrite = r.string("rewrite")
        }
    }

    public var uri: String?
    public var authority: String?
    public var uriRegexRewrite: RegexRewrite?

    init(_ r: ObjectReader) {
        uri = r.string("uri")
        authority = r.string("authority")
        uriRegexRewrite = r.object("uriRegexRewrite")
    }
}

public struct HTTPRetry: NodeDecodable, Equatable {
    public var attempts: Int?
    public var perTryTimeoutMs: Int?
    public var retryOn: String?
    public var retryRemoteLocalities: Bool?
    public var retryIgnorePreviousHosts: Bool?
    public var backoffMs: Int?

    init(_ r: ObjectReader) {
        attempts = r.int("attempts")
        perTryTimeoutMs = r.durationMs("perTryTimeout")
        retryOn = r.string("retryOn")
        retryRemoteLocalities = r.bool("retryRemoteLocalities")
        retryIgnorePreviousHosts = r.bool("retryIgnorePreviousHosts")
        backoffMs = r.durationMs("backoff")
    }
}

public struct HTTPFaultInjection: NodeDecodable, Equatable {
    public struct Delay: NodeDecodable, Equatable {
        public var fixedDelayMs: Int?
        public var exponentialDelayMs: Int?
        public var percentage: Percent?
        public var percent: Int?

        init(_ r: ObjectReader) {
            fixedDelayMs = r.durationMs("fixedDelay")
            exponentialDelayMs = r.durationMs("exponentialDelay")
            percentage = r.object("percentage")
            percent = r.int("percent")
        }
    }

    public struct Abort: NodeDecodable, Equatable {
        public var httpStatus: Int?
        public var grpcStatus: String?
        public var http2Error: String?
        public var percentage: Percent?

        init(_ r: ObjectReader) {
            httpStatus = r.int("httpStatus")
            grpcStatus = r.string("grpcStatus")
            http2Error = r.string("http2Error")
            percentage = r.object("percentage")
        }
    }

    public var delay: Delay?
    public var abort: Abort?

    init(_ r: ObjectReader) {
        delay = r.object("delay")
        abort = r.object("abort")
    }
}

public struct HTTPMirrorPolicy: NodeDecodable, Equatable {
    public var destination: Destination?
    public var percentage: Percent?

    init(_ r: ObjectReader) {
        destination = r.object("destination")
        percentage = r.object("percentage")
    }
}

public struct CorsPolicy: NodeDecodable, Equatable {
    public var allowOrigins: [StringMatch]
    public var allowOrigin: [String]
    public var allowMethods: [String]
    public var allowHeaders: [String]
    public var exposeHeaders: [String]
    public var maxAgeMs: Int?
    public var allowCredentials: Bool?
    public var unmatchedPreflights: String?

    init(_ r: ObjectReader) {
        allowOrigins = r.objects("allowOrigins")
        allowOrigin = r.strings("allowOrigin")
        allowMethods = r.strings("allowMethods")
        allowHeaders = r.strings("allowHeaders")
        exposeHeaders = r.strings("exposeHeaders")
        maxAgeMs = r.durationMs("maxAge")
        allowCredentials = r.bool("allowCredentials")
        unmatchedPreflights = r.enumeration("unmatchedPreflights", ["UNSPECIFIED", "FORWARD", "IGNORE"])
    }
}

public struct RouteDestination: NodeDecodable, Equatable {
    public var destination: Destination?
    public var weight: Int?

    init(_ r: ObjectReader) {
        destination = r.object("destination")
        weight = r.int("weight")
    }
}

public struct TCPRoute: NodeDecodable, Equatable {
    public struct Match: NodeDecodable, Equatable {
        public var destinationSubnets: [String]
        public var port: Int?
        public var sourceLabels: [String: String]
        public var gateways: [String]
        public var sourceNamespace: String?

        init(_ r: ObjectReader) {
            destinationSubnets = r.strings("destinationSubnets")
            port = r.int("port")
            sourceLabels = r.stringMap("sourceLabels")
            gateways = r.strings("gateways")
            sourceNamespace = r.string("sourceNamespace")
        }
    }

    public var match: [Match]
    public var route: [RouteDestination]

    init(_ r: ObjectReader) {
        match = r.objects("match")
        route = r.objects("route")
    }
}

public struct TLSRoute: NodeDecodable, Equatable {
    public struct Match: NodeDecodable, Equatable {
        public var sniHosts: [String]
        public var destinationSubnets: [String]
        public var port: Int?
        public var sourceLabels: [String: String]
        public var gateways: [String]
        public var sourceNamespace: String?

        init(_ r: ObjectReader) {
            sniHosts = r.strings("sniHosts")
            destinationSubnets = r.strings("destinationSubnets")
            port = r.int("port")
            sourceLabels = r.stringMap("sourceLabels")
            gateways = r.strings("gateways")
            sourceNamespace = r.string("sourceNamespace")
        }
    }

    public var match: [Match]
    public var route: [RouteDestination]

    init(_ r: ObjectReader) {
        match = r.objects("match")
        route = r.objects("route")
    }
}
