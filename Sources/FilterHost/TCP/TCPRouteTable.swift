#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import MeshAPI
import NIOCore

/// A TCP listener's routes, compiled: CIDRs parsed, names lowercased. The first route whose
/// match fits the connection wins, as Envoy's filter-chain match picks one chain.
struct TCPRouteTable {
    struct Entry {
        var name: String?
        var serverNames: [String]
        var sources: [CIDR]
        var destinations: [CIDR]
        /// (cluster, weight); one entry with weight 1 for a plain `cluster`.
        var clusters: [(name: String, weight: Int)]
        var totalWeight: Int
    }

    let entries: [Entry]
    /// Some route matches on SNI: the ClientHello is read before choosing.
    let needsServerName: Bool

    /// Throws a `ConfigError` for an unknown cluster, a bad CIDR or weights that add up to 0.
    init(_ proxy: TCPProxy, clusters: [String: Cluster], path: String) throws {
        var entries: [Entry] = []
        for (i, r) in proxy.routes.enumerated() {
            let p = "\(path).routes[\(i)]"
            let targets: [(String, Int)]
            if let c = r.cluster {
                targets = [(c, 1)]
            } else if let w = r.weightedClusters, !w.isEmpty {
                targets = w.map { ($0.name, $0.weight) }
            } else {
                throw ConfigError(path: p, reason: "a route needs cluster or weightedClusters")
            }
            for (name, weight) in targets {
                guard clusters[name] != nil else { throw ConfigError(path: p, reason: "unknown cluster '\(name)'") }
                guard weight >= 0 else { throw ConfigError(path: p + ".weightedClusters", reason: "weights must not be negative") }
            }
            let total = targets.reduce(0) { $0 + $1.1 }
            guard total > 0 else { throw ConfigError(path: p + ".weightedClusters", reason: "weights add up to 0") }
            func cidrs(_ list: [String]?, _ field: String) throws -> [CIDR] {
                try (list ?? []).map { text in
                    guard let c = CIDR(text) else { throw ConfigError(path: "\(p).match.\(field)", reason: "'\(text)' is not a CIDR") }
                    return c
                }
            }
            entries.append(Entry(name: r.name, serverNames: (r.match?.serverNames ?? []).map { $0.lowercased() },
                                 sources: try cidrs(r.match?.sourcePrefixes, "sourcePrefixes"),
                                 destinations: try cidrs(r.match?.destinationPrefixes, "destinationPrefixes"),
                                 clusters: targets, totalWeight: total))
        }
        self.entries = entries
        needsServerName = entries.contains { !$0.serverNames.isEmpty }
    }

    /// The cluster for a connection and the route that chose it, or nil when no route matches.
    func choose(serverName: String?, source: SocketAddress?, destination: SocketAddress?,
                roll: (Int) -> Int = { Int.random(in: 0..<$0) }) -> (cluster: String, route: String?)? {
        for e in entries {
            if !e.serverNames.isEmpty {
                guard let serverName, e.serverNames.contains(where: { Self.nameMatches($0, serverName) }) else { continue }
            }
            if !e.sources.isEmpty, !e.sources.contains(where: { $0.contains(source) }) { continue }
            if !e.destinations.isEmpty, !e.destinations.contains(where: { $0.contains(destination) }) { continue }
            var pick = roll(e.totalWeight)
            for (cluster, weight) in e.clusters {
                if pick < weight { return (cluster, e.name) }
                pick -= weight
            }
            return e.clusters.last.map { ($0.name, e.name) }
        }
        return nil
    }

    /// Envoy's server_names: exact, or `*.suffix` for any name ending in `.suffix`; `*` for any.
    static func nameMatches(_ pattern: String, _ name: String) -> Bool {
        if pattern == "*" { return true }
        if pattern.hasPrefix("*.") { return name.hasSuffix(pattern.dropFirst()) && name.count > pattern.count - 1 }
        return pattern == name
    }
}

/// An address prefix, IPv4 or IPv6 (`10.0.0.0/8`; a bare address is a /32 or /128).
struct CIDR: Equatable {
    let bytes: [UInt8]
    let prefixLength: Int

    init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard let bytes = Self.addressBytes(parts[0]) else { return nil }
        let length = parts.count == 2 ? Int(parts[1]) : bytes.count * 8
        guard let length, (0...(bytes.count * 8)).contains(length) else { return nil }
        self.bytes = bytes
        self.prefixLength = length
    }

    func contains(_ address: SocketAddress?) -> Bool {
        guard let ip = address?.ipAddress, let other = Self.addressBytes(ip), other.count == bytes.count else { return false }
        var left = prefixLength
        for i in bytes.indices where left > 0 {
            let bits = min(8, left)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if bytes[i] & mask != other[i] & mask { return false }
            left -= bits
        }
        return true
    }

    static func addressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
