import ArgumentParser
import ControlPlane
import MeshAPI
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct ProxyConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy-config",
        abstract: "Print what one proxy runs: clusters, listeners, routes, endpoints, secrets or plugins (like istioctl proxy-config).",
        discussion: """
        KIND is singular or plural, or istioctl's short form: cluster (c), listener (l), route (r),
        endpoint (ep), secret (s), plugin. Filters, as istioctl's: --fqdn (a substring of the
        service FQDN), --port, --subset (a substring of the subset) and --direction (inbound or
        outbound) select clusters, and endpoints by their cluster; --port and --direction select
        listeners, --direction and --fqdn (a substring of a domain) routes. A filter a kind has
        no field for is refused.
        """
    )

    enum Kind: String, CaseIterable {
        case clusters, listeners, routes, endpoints, secrets, plugins

        static let names: [String: Kind] = [
            "cluster": .clusters, "clusters": .clusters, "c": .clusters,
            "listener": .listeners, "listeners": .listeners, "l": .listeners,
            "route": .routes, "routes": .routes, "r": .routes,
            "endpoint": .endpoints, "endpoints": .endpoints, "ep": .endpoints, "eps": .endpoints,
            "secret": .secrets, "secrets": .secrets, "s": .secrets,
            "plugin": .plugins, "plugins": .plugins,
        ]

        /// The filters that have a field to look at in this kind.
        var filters: Set<String> {
            switch self {
            case .clusters, .endpoints: ["--fqdn", "--port", "--subset", "--direction"]
            case .listeners: ["--port", "--direction"]
            case .routes: ["--fqdn", "--direction"]
            case .secrets, .plugins: []
            }
        }
    }

    enum Direction: String, ExpressibleByArgument, CaseIterable { case inbound, outbound }

    @Argument(help: "cluster | listener | route | endpoint | secret | plugin (or the plural)")
    var kind: String

    @Argument(help: "The proxy: its id, its name (as in proxy-status), name.namespace, or an admin address HOST:PORT.")
    var proxy: String

    @Option(help: "Only clusters (endpoints, routes) whose service FQDN (domain) contains this.")
    var fqdn: String?

    @Option(help: "Only clusters (endpoints) of this service port, or listeners on this port.")
    var port: Int?

    @Option(help: "Only clusters (endpoints) whose subset contains this.")
    var subset: String?

    @Option(help: "Only inbound or outbound clusters, endpoints, listeners or routes.")
    var direction: Direction?

    @OptionGroup var controlPlane: ControlPlaneAddress
    @OptionGroup var output: OutputOptions

    var parsedKind: Kind { Kind.names[kind.lowercased()]! }

    func validate() throws {
        guard let k = Kind.names[kind.lowercased()] else {
            var message = "unknown kind \"\(kind)\""
            if let near = Spelling.suggestion(for: kind, among: Kind.names.keys.filter { $0.count > 2 }.sorted()) {
                message += " (did you mean \"\(near)\"?)"
            }
            throw ValidationError(message + "; one of: " + Kind.allCases.map(\.rawValue).joined(separator: ", "))
        }
        let given = [("--fqdn", fqdn != nil), ("--port", port != nil), ("--subset", subset != nil), ("--direction", direction != nil)]
        for (flag, set) in given where set && !k.filters.contains(flag) {
            throw ValidationError("\(flag) does not apply to \(k.rawValue)")
        }
    }

    func run() throws {
        let admin: String
        if proxy.contains(":"), Int(proxy.split(separator: ":").last ?? "") != nil {
            admin = proxy
        } else {
            guard let address = try controlPlane.proxy(proxy)["adminAddress"] as? String, !address.isEmpty else {
                throw CLIFailure("proxy \"\(proxy)\" did not say where its admin endpoint is")
            }
            admin = address
        }
        let kind = parsedKind
        if kind == .secrets { return try printSecrets(admin) }
        let dump = try StatusFetch.json(admin, "/config_dump", what: "the proxy's admin endpoint") as? [String: Any] ?? [:]
        let config = dump["config"] as? [String: Any] ?? [:]
        let filter = ConfigFilter(fqdn: fqdn, port: port, subset: subset, direction: direction?.rawValue)
        switch kind {
        case .listeners: try show(filter.listeners(config["listeners"]), table: Self.listenerTable)
        case .routes: try show(filter.routes(config["routeConfigs"]), table: Self.routeTable)
        case .clusters: try show(filter.clusters(config["clusters"]), table: Self.clusterTable)
        case .plugins: try show(config["luaPlugins"] as? [[String: Any]] ?? [], table: Self.pluginTable)
        case .endpoints:
            // The proxy says which endpoints outlier detection ejected.
            let health = try StatusFetch.health(admin)
            let rows: [[String: Any]] = filter.clusters(config["clusters"]).flatMap { c -> [[String: Any]] in
                let name = c["name"] as? String ?? ""
                return (c["endpoints"] as? [[String: Any]] ?? []).map { e in
                    let host = "\(e["address"] ?? ""):\(e["port"] ?? "")"
                    let ejected = health[name + "::" + host] == "/failed_outlier_check"
                    return ["endpoint": host, "status": ejected ? "EJECTED" : "HEALTHY", "cluster": name]
                }
            }
            try show(rows) { items in
                [["ENDPOINT", "STATUS", "CLUSTER"]] + items.map { row in ["endpoint", "status", "cluster"].map { row[$0] as? String ?? "" } }
            }
        case .secrets: break
        }
    }

    private func show(_ items: [[String: Any]], table: ([[String: Any]]) -> [[String]]) throws {
        if output.format != .table { return try output.emit(items) }
        printTable(table(items))
    }

    static func listenerTable(_ items: [[String: Any]]) -> [[String]] {
        [["NAME", "ADDRESS", "PORT", "ROUTES", "TLS"]] + items.map {
            [$0["name"] as? String ?? "", $0["address"] as? String ?? "", "\($0["port"] ?? "")",
             $0["routeConfig"] as? String ?? "", $0["tls"] != nil ? "yes" : "no"]
        }
    }

    static func routeTable(_ items: [[String: Any]]) -> [[String]] {
        var table = [["ROUTE CONFIG", "VIRTUAL HOST", "DOMAINS", "ROUTE", "MATCH", "ACTION"]]
        for rc in items {
            for vh in rc["virtualHosts"] as? [[String: Any]] ?? [] {
                for r in vh["routes"] as? [[String: Any]] ?? [] {
                    let action = (r["route"] as? [String: Any]).map { a in
                        (a["cluster"] as? String) ?? ((a["weightedClusters"] as? [[String: Any]] ?? [])
                            .map { "\($0["name"] ?? "")@\($0["weight"] ?? "")" }.joined(separator: ","))
                    } ?? ((r["directResponse"] != nil) ? "direct response" : (r["redirect"] != nil ? "redirect" : "-"))
                    table.append([rc["name"] as? String ?? "", vh["name"] as? String ?? "",
                                  (vh["domains"] as? [String] ?? []).prefix(3).joined(separator: ","),
                                  r["name"] as? String ?? "", fields(r["match"]), action])
                }
            }
        }
        return table
    }

    static func clusterTable(_ items: [[String: Any]]) -> [[String]] {
        [["CLUSTER", "PROTOCOL", "LB", "ENDPOINTS"]] + items.map {
            [$0["name"] as? String ?? "", $0["protocol"] as? String ?? "HTTP1", $0["lbPolicy"] as? String ?? "ROUND_ROBIN",
             "\(($0["endpoints"] as? [Any] ?? []).count)"]
        }
    }

    static func pluginTable(_ items: [[String: Any]]) -> [[String]] {
        [["PLUGIN", "PHASE", "PRIORITY", "FAIL STRATEGY", "ATTACHED TO"]] + items.map {
            let attach = fields($0["attachTo"])
            return [$0["name"] as? String ?? "", $0["phase"] as? String ?? "UNSPECIFIED", "\($0["priority"] ?? 0)",
                    $0["failStrategy"] as? String ?? "FAIL_OPEN", attach.isEmpty ? "everywhere" : attach]
        }
    }

    /// Like `istioctl proxy-config secret`: the workload certificate and the root it trusts.
    func printSecrets(_ admin: String) throws {
        let certs = try StatusFetch.json(admin, "/certs", what: "the proxy's admin endpoint") as? [String: Any] ?? [:]
        if output.format != .table { return try output.emit(certs) }
        let items = certs["certificates"] as? [[String: Any]] ?? []
        printTable([["RESOURCE NAME", "IDENTITY", "SERIAL NUMBER", "NOT BEFORE", "NOT AFTER", "ROOT SHA256"]] + items.map {
            [$0["name"] as? String ?? "", $0["identity"] as? String ?? "", $0["serialNumber"] as? String ?? "",
             $0["notBefore"] as? String ?? "", $0["notAfter"] as? String ?? "", $0["rootSHA256"] as? String ?? ""]
        })
    }

    /// `key=value` per field, sorted; nested values as compact JSON with sorted keys, so a
    /// row reads the same on every run.
    static func fields(_ object: Any?) -> String {
        (object as? [String: Any] ?? [:]).map { key, value in
            let text: String
            if value is [Any] || value is [String: Any] {
                text = JSONText.render(value)
            } else {
                text = "\(value)"
            }
            return "\(key)=\(text)"
        }.sorted().joined(separator: " ")
    }
}

/// istioctl's proxy-config filters over a proxy's config dump. Cluster names are Istio's
/// `direction|port|subset|fqdn`.
struct ConfigFilter {
    var fqdn: String?
    var port: Int?
    var subset: String?
    var direction: String?

    func clusters(_ value: Any?) -> [[String: Any]] {
        (value as? [[String: Any]] ?? []).filter { c in
            let parts = (c["name"] as? String ?? "").split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 4 else { return fqdn == nil && port == nil && subset == nil && direction == nil }
            let directionMatches = direction.map { $0 == parts[0] } ?? true
            let portMatches = port.map { String($0) == parts[1] } ?? true
            let subsetMatches = subset.map { parts[2].contains($0) } ?? true
            let fqdnMatches = fqdn.map { parts[3].contains($0) } ?? true
            return directionMatches && portMatches && subsetMatches && fqdnMatches
        }
    }

    func listeners(_ value: Any?) -> [[String: Any]] {
        (value as? [[String: Any]] ?? []).filter { l in
            let portMatches = port.map { "\(l["port"] ?? "")" == String($0) } ?? true
            let directionMatches = direction.map { (l["name"] as? String ?? "").hasPrefix($0) } ?? true
            return portMatches && directionMatches
        }
    }

    /// Route configs of the direction; with --fqdn, only their virtual hosts with a domain containing it.
    func routes(_ value: Any?) -> [[String: Any]] {
        (value as? [[String: Any]] ?? []).compactMap { rc in
            if let direction, !(rc["name"] as? String ?? "").hasPrefix(direction) { return nil }
            guard let fqdn else { return rc }
            var kept = rc
            let hosts = (rc["virtualHosts"] as? [[String: Any]] ?? []).filter { vh in
                (vh["domains"] as? [String] ?? []).contains { $0.contains(fqdn) }
            }
            guard !hosts.isEmpty else { return nil }
            kept["virtualHosts"] = hosts
            return kept
        }
    }
}
