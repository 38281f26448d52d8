#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The mesh as `/api/graph` serves it and the page at `/` draws it: workloads and services
/// as nodes (with a layer for a left-to-right layout), the traffic of the last window on
/// each edge, and every connected proxy's sync state.
public struct MeshGraph: Codable, Sendable, Equatable {
    public struct Node: Codable, Sendable, Equatable {
        /// `workload:NAME.NAMESPACE` or `service:HOST`; `workload:unknown` is traffic from outside
        /// the mesh. A hop whose service is unknown is one edge, workload to workload.
        public var id: String
        public var kind: String
        public var name: String
        public var namespace: String
        /// Column in a left-to-right drawing: callers left of what they call.
        public var layer: Int
    }

    public struct Edge: Codable, Sendable, Equatable {
        public var source: String
        public var target: String
        public var requestsPerSecond: Double
        public var errorsPerSecond: Double
        /// errors / requests in the window; 0 without requests.
        public var errorRatio: Double
        /// Request duration, milliseconds; nil without requests in the window.
        public var p99Milliseconds: Double?
        /// `mutual_tls` when every request of the window came over mutual TLS, `none` when
        /// none did, `mixed` otherwise; `unknown` when only the client reported the hop.
        public var connectionSecurityPolicy: String
    }

    public struct Proxy: Codable, Sendable, Equatable {
        public var id: String
        public var kind: String
        public var name: String
        public var namespace: String
        public var adminAddress: String
        /// SYNCED, STALE or NACK (as /debug/syncz).
        public var syncStatus: String
        public var nackReason: String?
        public var plugins: [String]
        /// `ok`, `pending` (not scraped yet) or why the last scrape failed.
        public var scrape: String
    }

    public var generatedAt: Date
    /// The span the rates are computed over, seconds (0 until two scrapes were made).
    public var windowSeconds: Double
    public var scrapeIntervalSeconds: Double
    public var nodes: [Node]
    public var edges: [Edge]
    public var proxies: [Proxy]

    /// No proxies, no traffic (the page when scraping is off).
    public static func empty(now: Date = Date()) -> MeshGraph {
        MeshGraph(generatedAt: now, windowSeconds: 0, scrapeIntervalSeconds: 0, nodes: [], edges: [], proxies: [])
    }

    /// Edges from each proxy's traffic over its window (`traffic` holds one delta and its
    /// span, in seconds, per proxy), and a node for every connected workload even when idle.
    static func build(traffic: [(tally: TrafficTally, seconds: Double)], proxies: [Proxy],
                      scrapeInterval: Double, now: Date = Date()) -> MeshGraph {
        var nodes: [String: Node] = [:]
        func workload(_ name: String, _ namespace: String) -> String {
            let id = name == "unknown" ? "workload:unknown" : "workload:\(name).\(namespace)"
            if nodes[id] == nil { nodes[id] = Node(id: id, kind: "workload", name: name, namespace: namespace, layer: 0) }
            return id
        }
        for p in proxies { _ = workload(p.name, p.namespace) }

        struct Accumulated {
            var counts = TrafficTally.Counts()
            var perSecond = (requests: 0.0, errors: 0.0)
            var security: Set<String> = []
        }
        var edges: [[String]: Accumulated] = [:]
        func add(_ from: String, _ to: String, _ counts: TrafficTally.Counts, _ seconds: Double, _ security: String) {
            var e = edges[[from, to], default: Accumulated()]
            e.counts.add(counts)
            e.perSecond.requests += counts.requests / seconds
            e.perSecond.errors += counts.errors / seconds
            e.security.insert(security)
            edges[[from, to]] = e
        }
        var window = 0.0
        for (tally, seconds) in traffic where seconds > 0 {
            window = max(window, seconds)
            for (hop, counts) in tally.hops where counts.requests > 0 {
                let source = workload(hop.sourceWorkload, hop.sourceNamespace)
                // A request whose authority names no service (an address, say) still reached a
                // workload: one edge straight to it.
                if hop.service == "unknown" && hop.destinationWorkload != "unknown" {
                    add(source, workload(hop.destinationWorkload, hop.destinationNamespace), counts, seconds, hop.security)
                    continue
                }
                let service = "service:\(hop.service)"
                if nodes[service] == nil {
                    let namespace = hop.service.split(separator: ".").dropFirst().first.map(String.init) ?? ""
                    nodes[service] = Node(id: service, kind: "service", name: hop.serviceName == "unknown" ? hop.service : hop.serviceName,
                                          namespace: namespace, layer: 0)
                }
                add(source, service, counts, seconds, hop.security)
                if hop.destinationWorkload != "unknown" {
                    add(service, workload(hop.destinationWorkload, hop.destinationNamespace), counts, seconds, hop.security)
                }
            }
        }
        let edgeList = edges.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { key -> Edge in
            let e = edges[key]!
            let policy = e.security.count == 1 ? e.security.first! : (e.security.contains("mutual_tls") ? "mixed" : "none")
            return Edge(source: key[0], target: key[1], requestsPerSecond: e.perSecond.requests,
                        errorsPerSecond: e.perSecond.errors,
                        errorRatio: e.counts.requests > 0 ? e.counts.errors / e.counts.requests : 0,
                        p99Milliseconds: e.counts.quantile(0.99), connectionSecurityPolicy: policy)
        }
        let layers = Self.layers(nodes: Array(nodes.keys), edges: edgeList.map { ($0.source, $0.target) })
        // Callers first, as they are drawn left to right.
        let edgesInOrder = edgeList.enumerated().sorted {
            (layers[$0.element.source] ?? 0, $0.offset) < (layers[$1.element.source] ?? 0, $1.offset)
        }.map(\.element)
        let nodeList = nodes.keys.sorted().map { id -> Node in
            var n = nodes[id]!
            n.layer = layers[id] ?? 0
            return n
        }
        return MeshGraph(generatedAt: now, windowSeconds: window, scrapeIntervalSeconds: scrapeInterval,
                         nodes: nodeList, edges: edgesInOrder, proxies: proxies)
    }

    /// Longest path from a node nothing calls, bounded by the node count so a cycle ends.
    static func layers(nodes: [String], edges: [(String, String)]) -> [String: Int] {
        var layer = Dictionary(uniqueKeysWithValues: nodes.map { ($0, 0) })
        for _ in 0..<max(1, nodes.count) {
            var changed = false
            for (s, t) in edges where (layer[s] ?? 0) + 1 > (layer[t] ?? 0) && (layer[s] ?? 0) + 1 < nodes.count {
                layer[t] = (layer[s] ?? 0) + 1
                changed = true
            }
            if !changed { break }
        }
        return layer
    }
}
