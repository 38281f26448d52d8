import ArgumentParser
import Foundation

/// Reads JSON from an HTTP endpoint of the control plane or a proxy's admin server.
/// A plain blocking HTTP/1.0 GET: it keeps FoundationNetworking (libcurl and its TLS
/// stack) out of the binary, which would add megabytes to every proxy's memory.
enum StatusFetch {
    static func json(_ url: String) throws -> Any {
        let rest = url.hasPrefix("http://") ? String(url.dropFirst(7)) : url
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let hostPort = rest[..<slash].split(separator: ":")
        let path = slash < rest.endIndex ? String(rest[slash...]) : "/"
        guard hostPort.count == 2, let port = UInt16(hostPort[1]) else { throw ValidationError("bad URL \(url)") }
        guard let body = httpGet(host: String(hostPort[0]), port: port, path: path) else {
            throw ValidationError("cannot reach \(url)")
        }
        return try JSONSerialization.jsonObject(with: body)
    }

    private static func httpGet(host: String, port: UInt16, path: String) -> Data? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var info: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &info) == 0, let ai = info else { return nil }
        defer { freeaddrinfo(info) }
        let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else { return nil }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(host)\r\n\r\n".utf8)
        guard send(fd, request, request.count, 0) == request.count else { return nil }
        var response = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            response.append(contentsOf: buffer[0..<n])
        }
        guard let end = response.range(of: Data("\r\n\r\n".utf8)) else { return nil }
        return response.subdata(in: end.upperBound..<response.endIndex)
    }

    static func proxies(_ statusAddress: String) throws -> [[String: Any]] {
        (try json("http://\(statusAddress)/debug/syncz") as? [[String: Any]]) ?? []
    }
}

struct ProxyStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy-status",
        abstract: "List every proxy connected to the control plane with its config version and sync state.",
        discussion: """
        SYNCED: the proxy accepted the last config sent; STALE: not acknowledged yet; NACK: refused, with the proxy's reason.
        WARNINGS: how many warnings (fields meshd does not enforce) the resources making up the proxy's config have; they are listed below the table.
        """
    )

    @Option(name: .customLong("control-plane-status"), help: "The control plane's status address, HOST:PORT.")
    var status: String = "127.0.0.1:15014"

    func run() throws {
        let rows = try StatusFetch.proxies(status)
        let header = ["NAME", "KIND", "SENT", "ACKED", "STATUS", "WARNINGS", "REASON"]
        var table = [header]
        var warnings: [String] = []
        for p in rows {
            let own = p["warnings"] as? [String] ?? []
            for w in own where !warnings.contains(w) { warnings.append(w) }
            table.append([p["id"] as? String ?? "?", p["kind"] as? String ?? "?", p["sentVersion"] as? String ?? "",
                          p["ackedVersion"] as? String ?? "", p["status"] as? String ?? "?", "\(own.count)",
                          p["nackReason"] as? String ?? ""])
        }
        printTable(table)
        // The count column says which proxies run config with warnings; these say what they are.
        if !warnings.isEmpty {
            print("\nWarnings (config the proxies above were sent that meshd does not enforce as Istio would):")
            for w in warnings { print("  " + w) }
        }
    }
}

struct ProxyConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy-config",
        abstract: "Print what one proxy runs: listeners, routes, clusters, endpoints or plugins (from its admin endpoint)."
    )

    enum Section: String, ExpressibleByArgument, CaseIterable { case listeners, routes, clusters, endpoints, plugins, secret }

    @Argument(help: "listeners | routes | clusters | endpoints | plugins | secret")
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
        if section == .secret { return try printSecrets(admin) }
        let dump = try StatusFetch.json("http://\(admin)/config_dump") as? [String: Any] ?? [:]
        let config = dump["config"] as? [String: Any] ?? [:]
        let key: String = switch section {
        case .listeners: "listeners"
        case .routes: "routeConfigs"
        case .clusters, .endpoints: "clusters"
        case .plugins: "luaPlugins"
        case .secret: ""
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
        case .secret:
            table = []
        case .plugins:
            table = [["PLUGIN", "PHASE", "PRIORITY", "FAIL STRATEGY", "ATTACHED TO"]] + items.map {
                let attach = Self.fields($0["attachTo"])
                return [$0["name"] as? String ?? "", $0["phase"] as? String ?? "UNSPECIFIED", "\($0["priority"] ?? 0)",
                        $0["failStrategy"] as? String ?? "FAIL_OPEN", attach.isEmpty ? "everywhere" : attach]
            }
        }
        printTable(table)
    }

    /// Like `istioctl proxy-config secret`: the workload certificate and the root it trusts.
    func printSecrets(_ admin: String) throws {
        let certs = try StatusFetch.json("http://\(admin)/certs") as? [String: Any] ?? [:]
        let items = certs["certificates"] as? [[String: Any]] ?? []
        if json {
            let data = try JSONSerialization.data(withJSONObject: certs, options: [.prettyPrinted, .sortedKeys])
            return print(String(decoding: data, as: UTF8.self))
        }
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
