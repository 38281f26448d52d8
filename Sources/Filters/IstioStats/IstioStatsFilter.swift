import FilterHost
import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// Istio's stats filter (`istio.stats`): exchanges workload metadata with the peer proxy in
/// headers and, when the stream is over, records Istio's standard metrics with Istio's labels.
/// Reporter `source` (outbound, gateways) sends its metadata on the request and reads the
/// server's from the response; `destination` (inbound) reads the client's from the request
/// and answers with its own. The exchange headers never reach the app or the client.
final class IstioStatsFilter: HTTPFilter {
    private let config: IstioStatsConfig
    private unowned let stream: StreamControl
    private var peer: WorkloadFacts?
    private var authority = ""
    private var isGRPC = false
    private var grpcStatus = ""
    private var requestBytes = 0
    private var responseBytes = 0
    private var requestMessages = GRPCMessageCounter()
    private var responseMessages = GRPCMessageCounter()
    private var recorded = false
    /// Kept only when Telemetry tag overrides may read them.
    private var requestHeaders: HTTPHeaders?

    init(config: IstioStatsConfig, stream: StreamControl) {
        self.config = config
        self.stream = stream
    }

    func onRequestHeaders(_ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus {
        authority = head.authority
        isGRPC = head.headers.first(name: "content-type")?.lowercased().hasPrefix("application/grpc") ?? false
        if !stream.snapshot.metricOverrides.isEmpty { requestHeaders = head.headers }
        exchange(&head.headers, fromPeer: config.reporter == .destination)
        return .continue
    }

    func onRequestData(_ data: inout ByteBuffer, endStream: Bool) -> FilterDataStatus {
        requestBytes += data.readableBytes
        if isGRPC { requestMessages.consume(data) }
        return .continue
    }

    func onResponseHeaders(_ head: inout ResponseHead, endStream: Bool) -> FilterHeadersStatus {
        if let status = head.headers.first(name: "grpc-status") { grpcStatus = status }
        exchange(&head.headers, fromPeer: config.reporter == .source)
        return .continue
    }

    func onResponseData(_ data: inout ByteBuffer, endStream: Bool) -> FilterDataStatus {
        responseBytes += data.readableBytes
        if isGRPC { responseMessages.consume(data) }
        return .continue
    }

    func onResponseTrailers(_ trailers: inout HTTPHeaders) -> FilterHeadersStatus {
        if let status = trailers.first(name: "grpc-status") { grpcStatus = status }
        return .continue
    }

    func onStreamComplete() {
        guard !recorded, let stats = stream.stats else { return }
        recorded = true
        let info = stream.streamInfo
        let overrides = stream.snapshot.metricOverrides
        let series = SeriesKeys(config: config, facts: facts(info), overrides: overrides,
                                attributes: overrides.isEmpty ? nil : StreamAttributes(info, requestHeaders: requestHeaders))
        if let k = series.keys(.requestCount) { stats.count(k.requests, 1) }
        let ms = Double((NIODeadline.now() - info.startTime).nanoseconds) / 1e6
        if let k = series.keys(.requestDuration) { stats.observe(k.duration, ms, bounds: .envoyDefault) }
        if let k = series.keys(.requestSize) { stats.observe(k.requestBytes, Double(requestBytes), bounds: .envoyDefault) }
        if let k = series.keys(.responseSize) { stats.observe(k.responseBytes, Double(responseBytes), bounds: .envoyDefault) }
        if isGRPC {
            if let k = series.keys(.grpcRequestMessages) { stats.count(k.requestMessages, requestMessages.messages) }
            if let k = series.keys(.grpcResponseMessages) { stats.count(k.responseMessages, responseMessages.messages) }
        }
    }

    /// Each metric's series keys for one stream, with the Telemetry overrides for its reporter.
    struct SeriesKeys {
        let config: IstioStatsConfig
        let facts: IstioRequestFacts
        let overrides: CompiledMetricOverrides
        /// nil when there are no overrides (the usual case: nothing to evaluate).
        let attributes: StreamAttributes?
        /// Istio's standard labels: one cache look-up per stream, not one per metric.
        let standard: IstioSeriesKeys

        init(config: IstioStatsConfig, facts: IstioRequestFacts, overrides: CompiledMetricOverrides, attributes: StreamAttributes?) {
            self.config = config
            self.facts = facts
            self.overrides = overrides
            self.attributes = attributes
            standard = config.series.keys(for: facts)
        }

        /// nil: the metric is disabled.
        func keys(_ metric: IstioMetric) -> IstioSeriesKeys? {
            guard let o = overrides.override(metric, config.reporter), let attributes else { return standard }
            if o.disabled { return nil }
            return config.series.keys(for: facts, tags: IstioTagResult.evaluate(o, attributes))
        }
    }

    /// The labels' facts for this stream as it ended.
    func facts(_ info: StreamInfo) -> IstioRequestFacts {
        var f = IstioRequestFacts(reporter: config.reporter, local: config.local, peer: peer,
                                  destinationService: "unknown", requestProtocol: isGRPC ? "grpc" : "http",
                                  responseCode: info.responseCode ?? 0, grpcStatus: grpcStatus,
                                  responseFlags: info.flagsString, connectionSecurityPolicy: "unknown")
        switch config.reporter {
        case .source:
            // The upstream connection's TLS is not this filter's to see: Istio reports
            // `unknown` for the source reporter too.
            f.destinationService = DestinationService.host(ofCluster: info.clusterName) ?? "unknown"
        case .destination:
            f.destinationService = DestinationService.host(ofAuthority: authority, namespace: config.local.namespace) ?? "unknown"
            f.securedBy(stream.connectionInfo.tls)
        }
        return f
    }

    static func spiffeID(_ cert: TLSCertificateFacts) -> String? { cert.uriSANs.first { $0.hasPrefix("spiffe://") } }

    /// Headers coming from the peer proxy: its facts are read and the exchange headers
    /// removed. Headers going to it: whatever the app put there is not this workload's word,
    /// so it is replaced (not decoded) with this workload's metadata.
    private func exchange(_ headers: inout HTTPHeaders, fromPeer: Bool) {
        if fromPeer {
            peer = Self.takePeer(&headers)
        } else {
            Self.strip(&headers)
            headers.add(name: PeerMetadata.header, value: config.encodedMetadata)
            headers.add(name: PeerMetadata.idHeader, value: config.nodeID)
        }
    }

    /// Removes the exchange headers; the peer's facts when they decode.
    static func takePeer(_ headers: inout HTTPHeaders) -> WorkloadFacts? {
        let value = headers.first(name: PeerMetadata.header)
        strip(&headers)
        return value.flatMap(PeerMetadata.decodeCached)
    }

    static func strip(_ headers: inout HTTPHeaders) {
        headers.remove(name: PeerMetadata.header)
        headers.remove(name: PeerMetadata.idHeader)
    }
}

extension IstioRequestFacts {
    /// The destination reporter's view of the downstream's mesh TLS: `mutual_tls` and both
    /// principals with a verified peer, else `none`.
    mutating func securedBy(_ tls: TLSConnectionFacts?) {
        let verifiedPeer = tls.flatMap { $0.peerCertificateValidated ? $0.peerCertificate : nil }
        connectionSecurityPolicy = verifiedPeer == nil ? "none" : "mutual_tls"
        sourcePrincipal = verifiedPeer.flatMap(IstioStatsFilter.spiffeID)
        destinationPrincipal = verifiedPeer == nil ? nil : tls?.localCertificate.flatMap(IstioStatsFilter.spiffeID)
    }
}
