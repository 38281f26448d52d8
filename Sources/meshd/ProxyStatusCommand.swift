import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Reads JSON from an HTTP endpoint of the control plane or a proxy's admin server.
enum StatusFetch {
    static func json(_ url: String) throws -> Any {
        guard let u = URL(string: url) else { throw ValidationError("bad URL \(url)") }
        let data: Data
        do { data = try Data(contentsOf: u) } catch { throw ValidationError("cannot reach \(url): \(error.localizedDescription)") }
        return try JSONSerialization.jsonObject(with: data)
    }

    static func proxies(_ statusAddress: String) throws -> [[String: Any]] {
        (try json("http://\(statusAddress)/debug/syncz") as? [[String: Any]]) ?? []
    }
}

struct ProxyStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy-status",
        abstract: "List every proxy connected to the control plane with its config version and sync state.",
        discussion: "SYNCED: the proxy accepted the last config sent; STALE: not acknowledged yet; NACK: refused, with the proxy's reason."
    )

    @Option(name: .customLong("control-plane-status"), help: "The control plane's status address, HOST:PORT.")
    var status: String = "127.0.0.1:15014"

    func run() throws {
        let rows = try StatusFetch.proxies(status)
        let header = ["NAME", "KIND", "SENT", "ACKED", "STATUS", "REASON"]
        var table = [header]
        for p in rows {
            table.append([p["id"] as? String ?? "?", p["kind"] as? String ?? "?", p["sentVersion"] as? String ?? "",
                          p["ackedVersion"] as? String ?? "", p["status"] as? String ?? "?", p["nackReason"] as? String ?? ""])
        }
        printTable(table)
    }
}

struct ProxyConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy-config",
        abstract: "Print what one proxy runs: listeners, routes, clusters, endpoints or plugins (from its admin endpoint)."
    )

    enum Section: String, ExpressibleByArgument, CaseIterable { case listeners, routes, clusters, endpoints, plugins }

    @Argument(help: "listeners | routes | clusters | endpoints | plugins")
    var section: Section

    @Argument(help: "The proxy: its id, or its name (as in proxy-status), or an admin address HOST:PORT.")
    var proxy: String

    @Option(name: .customLong("control-plane-status"), help: "The control plane's status address, HOST:PORT.")
    var status: String = "127.0.0.1:15014"

    @Flag(help: "Print raw JSON.")
    var json = false

    func run() throws {
        let admin: String
        if proxy.contains(":"), Int(proxy.split(separator: ":").last ?? "") != nil {
            admin = proxy
        } else {
            let rows = try StatusFetch.proxies(status)
            guard let row = rows.first(where: { row in
                let name = row["name"] as? String ?? "", ns = row["namespace"] as? String ?? ""
                return (row["id"] as? String) == proxy || name == proxy || "\(name).\(ns)" == proxy
            }),
                  let address = row["adminAddress"] as? String else {
                throw ValidationError("no connected proxy named '\(proxy)' (see meshd proxy-status)")
            }
            admin = address
        }
        let dump = try StatusFetch.json("http://\(admin)/config_dump") as? [String: Any] ?? [:]
        let config = dump["config"] as? [String: Any] ?? [:]
        let key: String = switch section {
        case .listeners: "listeners"
        case .routes: "routeConfigs"
        case .clusters, .endpoints: "clusters"
        case .plugins: "luaPlugins"
        }
        let items = config[key] as? [[String: Any]] ?? []
        if json {
            let data = try JSONSerialization.data(withJSONObject: items, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        var table: [[String]]
        switch section {
        case .listeners:
            table = [["NAME", "ADDRESS", "PORT", "ROUTES", "TLS"]] + items.map {
                [$0["name"] as? String ?? "", $0["address"] as? String ?? "", "\($0["port"] ?? "")",
                 $0["routeConfig"] as? String ?? "", $0["tls"] != nil ? "yes" : "no"]
            }
        case .routes:
            table = [["ROUTE CONFIG", "VIRTUAL HOST", "DOMAINS", "ROUTE", "MATCH", "ACTION"]]
            for rc in items {
                for vh in rc["virtualHosts"] as? [[String: Any]] ?? [] {
                    for r in vh["routes"] as? [[String: Any]] ?? [] {
                        let match = Self.fields(r["match"])
                        let action = (r["route"] as? [String: Any]).map { a in
                            (a["cluster"] as? String) ?? ((a["weightedClusters"] as? [[String: Any]] ?? [])
                                .map { "\($0["name"] ?? "")@\($0["weight"] ?? "")" }.joined(separator: ","))
                        } ?? ((r["directResponse"] != nil) ? "direct response" : (r["redirect"] != nil ? "redirect" : "-"))
                        table.append([rc["name"] as? String ?? "", vh["name"] as? String ?? "",
                                      (vh["domains"] as? [String] ?? []).prefix(3).joined(separator: ","),
                                      r["name"] as? String ?? "", match, action])
                    }
                }
            }
        case .clusters:
            table = [["CLUSTER", "PROTOCOL", "LB", "ENDPOINTS"]] + items.map {
                [$0["name"] as? String ?? "", $0["protocol"] as? String ?? "HTTP1", $0["lbPolicy"] as? String ?? "ROUND_ROBIN",
                 "\(($0["endpoints"] as? [Any] ?? []).count)"]
            }
        case .endpoints:
            table = [["ENDPOINT", "CLUSTER"]]
            for c in items {
                for e in c["endpoints"] as? [[String: Any]] ?? [] {
                    table.append(["\(e["address"] ?? ""):\(e["port"] ?? "")", c["name"] as? String ?? ""])
                }
            }
        case .plugins:
            table = [["PLUGIN", "PHASE", "PRIORITY", "FAIL STRATEGY", "ATTACHED TO"]] + items.map {
                let attach = Self.fields($0["attachTo"])
                return [$0["name"] as? String ?? "", $0["phase"] as? String ?? "UNSPECIFIED", "\($0["priority"] ?? 0)",
                        $0["failStrategy"] as? String ?? "FAIL_OPEN", attach.isEmpty ? "everywhere" : attach]
            }
        }
        printTable(table)
    }

    /// `key=value` per field, sorted; nested values as compact JSON with sorted keys, so a
    /// row reads the same on every run.
    static func fields(_ object: Any?) -> String {
        (object as? [String: Any] ?? [:]).map { key, value in
            let text: String
            if value is [Any] || value is [String: Any],
               let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes]) {
                text = String(decoding: data, as: UTF8.self)
            } else {
                text = "\(value)"
            }
            return "\(key)=\(text)"
        }.sorted().joined(separator: " ")
    }
}

func printTable(_ rows: [[String]]) {
    guard let first = rows.first else { return }
    var widths = first.map(\.count)
    for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
    for r in rows {
        print(r.enumerated().map { i, c in c.padding(toLength: widths[i] + 2, withPad: " ", startingAt: 0) }.joined())
    }
}
