import FilterHost
import MeshAPI
import Transport

/// `istio.stats` as a network filter on a TCP proxy listener: Istio's TCP metrics, with
/// Istio's TCP label set (the HTTP set with `request_protocol="tcp"` and without
/// response_code and grpc_response_status). The labels are fixed when the connection opens,
/// as Istio does.
struct IstioTCPStatsFactory: NetworkFilterFactory {
    let config: IstioStatsConfig

    static func build(_ config: JSONValue?) throws -> NetworkFilterFactory {
        IstioTCPStatsFactory(config: try IstioStatsConfig(config))
    }

    func makeObserver(stats: StatsScope) -> TCPConnectionObserver { IstioTCPStats(config: config, stats: stats) }
}

final class IstioTCPStats: TCPConnectionObserver {
    private let config: IstioStatsConfig
    private let stats: StatsScope
    private var labels = ""

    init(config: IstioStatsConfig, stats: StatsScope) {
        self.config = config
        self.stats = stats
    }

    func opened(_ facts: TCPConnectionFacts) {
        labels = Self.facts(facts, config: config).labels()
        stats.count("istio_tcp_connections_opened_total{\(labels)}", 1)
    }

    func closed(_ facts: TCPConnectionFacts, bytesReceived: Int, bytesSent: Int) {
        stats.count("istio_tcp_received_bytes_total{\(labels)}", bytesReceived)
        stats.count("istio_tcp_sent_bytes_total{\(labels)}", bytesSent)
        stats.count("istio_tcp_connections_closed_total{\(labels)}", 1)
    }

    /// A connection has no metadata exchange here (Istio's TCP exchange is not spoken), so the
    /// peer is unknown; the destination service is the picked cluster's host for the source
    /// reporter (gateways), as for HTTP.
    static func facts(_ c: TCPConnectionFacts, config: IstioStatsConfig) -> IstioRequestFacts {
        var f = IstioRequestFacts(reporter: config.reporter, local: config.local, peer: nil,
                                  destinationService: "unknown", requestProtocol: "tcp", responseCode: nil,
                                  grpcStatus: "", responseFlags: c.responseFlags, connectionSecurityPolicy: "unknown")
        if config.reporter == .source {
            f.destinationService = DestinationService.host(ofCluster: c.cluster) ?? "unknown"
        } else {
            // A sidecar's inbound: behind mesh TLS, the verified peer.
            f.securedBy(c.connection.tls)
        }
        return f
    }
}
