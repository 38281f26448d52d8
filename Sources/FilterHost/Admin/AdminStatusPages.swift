#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import NIOCore

/// `/clusters`, `/listeners` and `/server_info` in Envoy's shapes.
extension AdminPages {
    typealias HostStats = [LoopStats.HostKey: LoopStats.HostCounts]

    /// One endpoint's state as the page shows it.
    private struct HostRow {
        let host: String
        let endpoint: Endpoint
        let counts: LoopStats.HostCounts
        let ejected: Bool
        var healthFlags: String { ejected ? "/failed_outlier_check" : "healthy" }
    }

    private static func rows(_ cluster: Cluster, hosts: HostStats, ejected: Set<String>) -> [HostRow] {
        cluster.endpoints.map { e in
            let host = OutlierDetectors.host(e)
            return HostRow(host: host, endpoint: e, counts: hosts[LoopStats.HostKey(cluster: cluster.name, host: host)] ?? .init(),
                           ejected: ejected.contains(host))
        }
    }

    /// Each cluster's circuit-breaker thresholds (Envoy's defaults where unset).
    private static func thresholds(_ c: Cluster) -> [(String, Int)] {
        [("max_connections", c.maxConnections ?? 1024), ("max_pending_requests", c.maxPendingRequests ?? 1024),
         ("max_requests", c.maxRequests ?? 1024), ("max_retries", c.maxRetries ?? 3)]
    }

    /// Envoy's /clusters text: `cluster::default_priority::max_connections::1024`,
    /// `cluster::added_via_api::true`, then per host `cluster::host:port::<stat>::<value>` with
    /// cx_active, rq_total, rq_success, rq_error, health_flags (`healthy`, or
    /// `/failed_outlier_check` for an endpoint outlier detection ejected) and weight.
    static func clusters(_ clusters: [Cluster], hosts: HostStats) -> String {
        let ejected = OutlierDetectors.shared.ejectedByCluster(clusters)
        var out = ""
        for c in clusters {
            for (name, value) in thresholds(c) { out += "\(c.name)::default_priority::\(name)::\(value)\n" }
            out += "\(c.name)::added_via_api::true\n"
            for r in rows(c, hosts: hosts, ejected: ejected[c.name] ?? []) {
                let prefix = "\(c.name)::\(r.host)::"
                out += prefix + "cx_active::\(r.counts.connections)\n"
                out += prefix + "rq_error::\(r.counts.errors)\n"
                out += prefix + "rq_success::\(r.counts.requests - r.counts.errors)\n"
                out += prefix + "rq_total::\(r.counts.requests)\n"
                out += prefix + "health_flags::\(r.healthFlags)\n"
                out += prefix + "weight::1\n"
            }
        }
        return out
    }

    /// Envoy's `/clusters?format=json`: `cluster_statuses` with each host's address, stats,
    /// health status and weight.
    static func clustersJSON(_ clusters: [Cluster], hosts: HostStats) -> String {
        let ejected = OutlierDetectors.shared.ejectedByCluster(clusters)
        let statuses: [[String: Any]] = clusters.map { c in
            let hostStatuses: [[String: Any]] = rows(c, hosts: hosts, ejected: ejected[c.name] ?? []).map { r in
                var health: [String: Any] = ["eds_health_status": "HEALTHY"]
                if r.ejected { health["failed_outlier_check"] = true }
                return [
                    "address": ["socket_address": ["address": r.endpoint.address, "port_value": r.endpoint.port]],
                    "stats": [
                        ["name": "cx_active", "type": "GAUGE", "value": r.counts.connections],
                        ["name": "rq_error", "value": r.counts.errors],
                        ["name": "rq_success", "value": r.counts.requests - r.counts.errors],
                        ["name": "rq_total", "value": r.counts.requests],
                    ],
                    "health_status": health,
                    "weight": 1,
                ]
            }
            let limits: [String: Any] = Dictionary(uniqueKeysWithValues: thresholds(c).map { ($0.0, $0.1 as Any) })
            return ["name": c.name, "added_via_api": true, "host_statuses": hostStatuses,
                    "circuit_breakers": ["thresholds": [limits]]]
        }
        return jsonText(["cluster_statuses": statuses])
    }

    /// Envoy's /listeners text: `name::address:port`, one per listener.
    static func listeners(_ listeners: [(name: String, address: SocketAddress?)]) -> String {
        listeners.map { "\($0.name)::\(hostPort($0.address))\n" }.joined()
    }

    /// Envoy's `/listeners?format=json`: `listener_statuses` with each local address.
    static func listenersJSON(_ listeners: [(name: String, address: SocketAddress?)]) -> String {
        let statuses: [[String: Any]] = listeners.map { l in
            ["name": l.name,
             "local_address": ["socket_address": ["address": l.address?.ipAddress ?? "", "port_value": l.address?.port ?? 0]]]
        }
        return jsonText(["listener_statuses": statuses])
    }

    private static func hostPort(_ a: SocketAddress?) -> String {
        guard let a, let ip = a.ipAddress, let port = a.port else { return "closed" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    /// Envoy's /server_info: version, state, uptimes (`"<seconds>s"`, protobuf JSON's duration
    /// form) and the command-line options.
    static func serverInfo(_ runtime: ProxyRuntime, state: (AdminEndpoints.ServerState, reason: String?),
                           process: AdminServer.Process) -> String {
        let uptime = "\(Int(Date().timeIntervalSince(runtime.startTime)))s"
        var options = process.commandLineOptions
        options["concurrency"] = options["concurrency"] ?? String(runtime.group.makeIterator().map { $0 }.count)
        let info: [String: Any] = [
            "version": process.version,
            "state": state.0.rawValue,
            "uptime_current_epoch": uptime,
            "uptime_all_epochs": uptime,
            "command_line_options": options,
        ]
        return jsonText(info)
    }

    static func jsonText(_ object: Any) -> String {
        JSONText.render(object, pretty: true) + "\n"
    }
}
