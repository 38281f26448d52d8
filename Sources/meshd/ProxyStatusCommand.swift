import ArgumentParser
import ControlPlane
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The address flag every client command shares: where the control plane's status port is.
struct ControlPlaneAddress: ParsableArguments {
    @Option(name: .customLong("control-plane-status"), help: "The control plane's status address, HOST:PORT.")
    var status: String = "127.0.0.1:15014"

    /// The connected proxy `proxy` names: its id, its name, or name.namespace.
    func proxy(_ proxy: String) throws(CLIFailure) -> [String: Any] {
        let rows = try StatusFetch.proxies(status)
        if let row = rows.first(where: { row in
            let name = row["name"] as? String ?? "", ns = row["namespace"] as? String ?? ""
            return (row["id"] as? String) == proxy || name == proxy || "\(name).\(ns)" == proxy
        }) { return row }
        let known = rows.compactMap { $0["name"] as? String }.sorted()
        guard !known.isEmpty else {
            throw CLIFailure("no proxy named \"\(proxy)\": no proxy is connected to the control plane at \(status)")
        }
        let near = Spelling.suggestion(for: proxy, among: known).map { "did you mean \"\($0)\"? " } ?? ""
        throw CLIFailure("no proxy named \"\(proxy)\" (\(near)known: \(known.joined(separator: ", ")))")
    }
}

struct ProxyStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy-status",
        abstract: "Show every proxy's sync state per resource type, or one proxy's in detail (like istioctl proxy-status).",
        discussion: """
        CDS, LDS, EDS, RDS, ECDS: clusters, listeners, endpoints, routes and Lua plugins (meshd's
        extension configs), each SYNCED (the proxy acknowledged what was sent), NOT SENT (the
        proxy's config has none), STALE (sent, not acknowledged yet; "Never Acknowledged" before
        the first ACK) or NACK (the proxy refused the push that changed it; REASON says why).
        Endpoints travel inside clusters, so EDS follows CDS. VERSION: the proxy's meshd version.
        WARNINGS: how many warnings (fields meshd does not enforce) the resources making up the
        proxy's config have; they are listed below the table.

        With NAME (an id, a name, or name.namespace): that proxy's detail: the content hashes
        sent and acknowledged per type, the NACK reason and the warnings.
        """
    )

    @Argument(help: "One proxy: its id, name, or name.namespace.")
    var name: String?

    @OptionGroup var controlPlane: ControlPlaneAddress
    @OptionGroup var output: OutputOptions

    func run() throws {
        if let name { return try detail(controlPlane.proxy(name)) }
        let rows = try StatusFetch.proxies(controlPlane.status)
        if output.format != .table { return try output.emit(rows) }
        var table = [["NAME", "KIND"] + ProxyHub.TypeSync.columns.map { $0.column } + ["VERSION", "WARNINGS", "REASON"]]
        var warnings: [String] = []
        for p in rows {
            let own = p["warnings"] as? [String] ?? []
            for w in own where !warnings.contains(w) { warnings.append(w) }
            table.append([p["id"] as? String ?? "?", p["kind"] as? String ?? "?"] + Self.typeStatuses(p).map { $0.status }
                         + [Self.version(p), "\(own.count)", p["nackReason"] as? String ?? ""])
        }
        printTable(table)
        // The count column says which proxies run config with warnings; these say what they are.
        if !warnings.isEmpty {
            print("\nWarnings (config the proxies above were sent that meshd does not enforce as Istio would):")
            for w in warnings { print("  " + w) }
        }
    }

    private func detail(_ p: [String: Any]) throws {
        if output.format != .table { return try output.emit(p) }
        let facts: [(String, String)] = [
            ("Proxy", p["id"] as? String ?? "?"), ("Kind", p["kind"] as? String ?? "?"),
            ("Address", p["address"] as? String ?? ""), ("Admin", p["adminAddress"] as? String ?? ""),
            ("Version", Self.version(p)), ("Connected", p["connectedAt"] as? String ?? ""),
            ("Status", p["status"] as? String ?? "?"),
            ("Sent version", p["sentVersion"] as? String ?? ""), ("Acked version", p["ackedVersion"] as? String ?? ""),
        ]
        for (label, value) in facts { print(padded(label + ":", to: 15) + value) }
        print("")
        printTable([["TYPE", "STATUS", "SENT", "ACKED"]] + Self.typeStatuses(p).map {
            [$0.type, $0.status, $0.sent.isEmpty ? "-" : $0.sent, $0.acked.isEmpty ? "-" : $0.acked]
        })
        if let reason = p["nackReason"] as? String { print("\nNACK reason: \(reason)") }
        let warnings = p["warnings"] as? [String] ?? []
        if !warnings.isEmpty {
            print("\nWarnings (config this proxy was sent that meshd does not enforce as Istio would):")
            for w in warnings { print("  " + w) }
        }
    }

    private static func typeStatuses(_ p: [String: Any]) -> [(type: String, status: String, sent: String, acked: String)] {
        (p["resources"] as? [[String: Any]] ?? []).map {
            ($0["type"] as? String ?? "?", $0["status"] as? String ?? "?", $0["sent"] as? String ?? "", $0["acked"] as? String ?? "")
        }
    }

    private static func version(_ p: [String: Any]) -> String {
        let v = p["proxyVersion"] as? String ?? ""
        return v.isEmpty ? "unknown" : v
    }
}
