#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import NIOCore
import YAML
import FilterHost
import Filters
import Transport
import LuaRuntime

/// A request as the client sends it, for `meshd plugin test`.
public struct PluginTestRequest: Sendable {
    public var method = "GET"
    public var scheme = "http"
    public var path = "/"
    public var authority = "localhost"
    public var protocolVersion = HTTPProtocolVersion.http11
    public var headers: [(String, String)] = []
    /// The body, chunk by chunk as it arrives (one chunk for a plain string).
    public var body: [String] = []
    public var trailers: [(String, String)]?

    public init() {}
}

/// An upstream response, for `meshd plugin test`.
public struct PluginTestResponse: Sendable {
    public var status = 200
    public var headers: [(String, String)] = []
    public var body: [String] = []
    public var trailers: [(String, String)]?

    public init() {}
}

/// How the plugin is set up: what a `meshd.lua` filter config says, minus the code, plus
/// what the offline run pretends about the route and the downstream connection.
public struct PluginTestConfig: Sendable {
    public var name: String?
    public var failStrategy = LuaPluginConfig.FailStrategy.failOpen
    public var limits = LuaLimits()
    public var pluginConfig: JSONValue?
    /// What `require` may load: the plugin's own modules, compiled.
    public var modules: [String: LuaScript] = [:]
    /// The selected route (`streamInfo():routeName()`) and its metadata (`metadata()`).
    public var routeName = "default"
    public var routeMetadata: JSONValue?
    public var remoteAddress = "127.0.0.1:51000"
    public var localAddress = "127.0.0.1:8080"
    public var tls = false
    public var serverName: String?
    /// A listener's perConnectionBufferLimitBytes: a larger buffered body is answered 413.
    public var bufferLimitBytes = 1 << 20
    /// Things in the file that were accepted but have no effect.
    public var warnings: [String] = []

    public init() {}
}

extension PluginTestConfig {
    /// The settings of a plugin as the control plane sends it (a `luaPlugins` entry), checked
    /// as the proxy checks them. Its code is the caller's to run.
    public init(plugin: LuaPlugin) throws {
        var settings = plugin
        settings.inlineCode = ""
        let parsed = try LuaPluginConfig(plugin: settings)
        self.init()
        name = parsed.name
        failStrategy = parsed.failStrategy
        limits = parsed.limits
        pluginConfig = parsed.pluginConfig
        modules = parsed.modules
    }

    /// The limits as a `meshd.lua` filter config's `limits` map.
    private var limitsConfig: [String: JSONValue] {
        var config: [String: JSONValue] = [:]
        for (key, path) in LuaPluginConfig.countLimits { config[key] = .number(Double(limits[keyPath: path])) }
        if !limits.sharedDicts.isEmpty { config["sharedDicts"] = .object(limits.sharedDicts.mapValues { .number(Double($0)) }) }
        return config
    }

    /// The plugin settings as a `meshd.lua` filter config without code: what a config file overrides.
    var filterConfig: [String: JSONValue] {
        var filter: [String: JSONValue] = [
            "inlineCode": .string(""),
            "failStrategy": .string(failStrategy.rawValue),
            "limits": .object(limitsConfig),
        ]
        if let name { filter["name"] = .string(name) }
        if let pluginConfig { filter["pluginConfig"] = pluginConfig }
        if !modules.isEmpty { filter["modules"] = .object(modules.mapValues { .string($0.source) }) }
        return filter
    }
}

/// Reads the YAML files of `meshd plugin test`. Errors are `ConfigError`s naming the
/// file, the line and the field.
public enum PluginTestInput {
    public static func request(yaml text: String, file: String? = nil) throws -> PluginTestRequest {
        let fields = try mapping(text, file: file, allowed: ["method", "scheme", "path", "authority", "protocol",
                                                             "headers", "body", "trailers"])
        var r = PluginTestRequest()
        for (key, node) in fields {
            let at = Where(file: file, path: key, node: node)
            switch key {
            case "method": r.method = try scalar(node, at).uppercased()
            case "scheme": r.scheme = try scalar(node, at)
            case "path":
                r.path = try scalar(node, at)
                guard r.path.hasPrefix("/") || r.path == "*" else { throw at.error("must start with /") }
            case "authority": r.authority = try scalar(node, at)
            case "protocol":
                let p = try scalar(node, at)
                guard let v = HTTPProtocolVersion(rawValue: p.uppercased()) else {
                    throw at.error("must be HTTP/1.0, HTTP/1.1 or HTTP/2, not '\(p)'")
                }
                r.protocolVersion = v
            case "headers": r.headers = try headers(node, at)
            case "body": r.body = try body(node, at)
            case "trailers": r.trailers = try headers(node, at)
            default: break
            }
        }
        // HTTP/1.1's Host header is the authority (the engine keeps it out of the header map).
        if let i = r.headers.firstIndex(where: { $0.0.lowercased() == "host" }) {
            if fields.first(where: { $0.0 == "authority" }) == nil { r.authority = r.headers[i].1 }
            r.headers.remove(at: i)
        }
        addLength(&r.headers, r.body, chunked: r.trailers != nil)
        return r
    }

    public static func response(yaml text: String, file: String? = nil) throws -> PluginTestResponse {
        let fields = try mapping(text, file: file, allowed: ["status", "headers", "body", "trailers"])
        var r = PluginTestResponse()
        for (key, node) in fields {
            let at = Where(file: file, path: key, node: node)
            switch key {
            case "status":
                guard let s = Int(try scalar(node, at)), (100...999).contains(s) else {
                    throw at.error("must be an HTTP status code")
                }
                r.status = s
            case "headers": r.headers = try headers(node, at)
            case "body": r.body = try body(node, at)
            case "trailers": r.trailers = try headers(node, at)
            default: break
            }
        }
        addLength(&r.headers, r.body, chunked: r.trailers != nil)
        return r
    }

    /// `name`, `failStrategy`, `limits`, `pluginConfig` as in a `meshd.lua` filter config
    /// (checked by the same code), plus `route: {name, metadata}`, `downstream:
    /// {remoteAddress, localAddress, tls, serverName}` and `bufferLimitBytes`. What the file
    /// gives overrides `base` (a plugin resource's settings); `limits` key by key.
    public static func config(yaml text: String, file: String? = nil,
                              base: PluginTestConfig = PluginTestConfig()) throws -> PluginTestConfig {
        let fields = try mapping(text, file: file, allowed: ["name", "failStrategy", "limits", "pluginConfig",
                                                             "route", "downstream", "bufferLimitBytes", "inlineCode",
                                                             "modules"])
        var c = base
        var filter = base.filterConfig
        for (key, node) in fields {
            let at = Where(file: file, path: key, node: node)
            switch key {
            case "limits":
                let given = try json(node, at)
                if case .object(let overrides) = given, case .object(let limits)? = filter["limits"] {
                    filter["limits"] = .object(limits.merging(overrides) { $1 })
                } else {
                    filter["limits"] = given
                }
            case "name", "failStrategy", "pluginConfig", "modules":
                filter[key] = try json(node, at)
            case "inlineCode":
                c.warnings.append("\(at.prefix)inlineCode is ignored: the plugin file given on the command line runs")
            case "route":
                for (k, v) in try submapping(node, at, allowed: ["name", "metadata"]) {
                    let sub = at.child(k, v)
                    if k == "name" { c.routeName = try scalar(v, sub) } else { c.routeMetadata = try json(v, sub) }
                }
            case "downstream":
                for (k, v) in try submapping(node, at, allowed: ["remoteAddress", "localAddress", "tls", "serverName"]) {
                    let sub = at.child(k, v)
                    let s = try scalar(v, sub)
                    switch k {
                    case "remoteAddress", "localAddress":
                        guard (try? socketAddress(s)) != nil else { throw sub.error("must be IP:PORT, not '\(s)'") }
                        if k == "remoteAddress" { c.remoteAddress = s } else { c.localAddress = s }
                    case "tls":
                        guard let b = Bool(s.lowercased()) else { throw sub.error("must be true or false") }
                        c.tls = b
                    default: c.serverName = s
                    }
                }
            case "bufferLimitBytes":
                guard let n = Int(try scalar(node, at)), n > 0 else { throw at.error("must be a positive integer") }
                c.bufferLimitBytes = n
            default: break
            }
        }
        // The same checks the proxy makes on a meshd.lua filter config.
        let parsed: LuaPluginConfig
        do {
            parsed = try LuaPluginConfig(config: .object(filter))
        } catch var e as ConfigError {
            e.file = file
            if let node = fields.first(where: { e.path.hasPrefix($0.0) })?.1 { e.line = node.mark?.line }
            throw e
        }
        c.name = filter["name"] == nil ? nil : parsed.name
        c.failStrategy = parsed.failStrategy
        c.limits = parsed.limits
        c.pluginConfig = parsed.pluginConfig
        c.modules = parsed.modules
        return c
    }

    /// "IP:PORT" or "[IPv6]:PORT".
    static func socketAddress(_ s: String) throws -> SocketAddress {
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]) else {
            throw ConfigError(path: "", reason: "not IP:PORT")
        }
        var ip = String(s[..<colon])
        if ip.hasPrefix("["), ip.hasSuffix("]") { ip = String(ip.dropFirst().dropLast()) }
        return try SocketAddress(ipAddress: ip, port: port)
    }

    // MARK: YAML helpers

    /// Where a value sits, for error messages.
    struct Where {
        let file: String?
        let path: String
        let node: Node

        func error(_ reason: String) -> ConfigError {
            ConfigError(file: file, line: node.mark?.line, path: path, reason: reason)
        }

        func child(_ key: String, _ node: Node) -> Where { Where(file: file, path: path + "." + key, node: node) }
        func index(_ i: Int, _ node: Node) -> Where { Where(file: file, path: path + "[\(i)]", node: node) }

        var prefix: String { (file.map { $0 + ": " } ?? "") }
    }

    /// The top-level mapping, in file order, refusing keys that are not `allowed`.
    private static func mapping(_ text: String, file: String?, allowed: Set<String>) throws -> [(String, Node)] {
        let root: Node?
        do {
            root = try YAMLParser.compose(text)
        } catch {
            throw ConfigError(file: file, path: "", reason: "invalid YAML: \(error)")
        }
        guard let root else { return [] }
        return try submapping(root, Where(file: file, path: "", node: root), allowed: allowed)
    }

    private static func submapping(_ node: Node, _ at: Where, allowed: Set<String>) throws -> [(String, Node)] {
        guard case .mapping(let m) = node else { throw at.error("must be a map") }
        var out: [(String, Node)] = []
        for (k, v) in m {
            let key = k.string ?? ""
            let sub = at.path.isEmpty ? Where(file: at.file, path: key, node: k) : at.child(key, k)
            guard allowed.contains(key) else {
                throw sub.error("unknown field (expected one of: \(allowed.sorted().joined(separator: ", ")))")
            }
            guard !out.contains(where: { $0.0 == key }) else { throw sub.error("given twice") }
            out.append((key, v))
        }
        return out
    }

    /// A scalar's text exactly as written (so `1.10` stays "1.10").
    private static func scalar(_ node: Node, _ at: Where) throws -> String {
        guard case .scalar(let s) = node else { throw at.error("must be a single value, not a list or map") }
        return s.string
    }

    /// A map (`{name: value}` or `{name: [v1, v2]}`), or a list of `[name, value]` pairs,
    /// `{name: value}` maps or `"name: value"` strings. Order and repeats are kept.
    private static func headers(_ node: Node, _ at: Where) throws -> [(String, String)] {
        var out: [(String, String)] = []
        func add(_ name: String, _ value: Node, _ at: Where) throws {
            guard !name.isEmpty, !name.hasPrefix(":") else {
                throw at.error("'\(name)' is not a header name (give :method, :path, :authority as method, path, authority)")
            }
            if case .sequence(let values) = value {
                for (i, v) in values.enumerated() { out.append((name.lowercased(), try scalar(v, at.index(i, v)))) }
            } else if value.isNull {
                out.append((name.lowercased(), ""))
            } else {
                out.append((name.lowercased(), try scalar(value, at)))
            }
        }
        switch node {
        case .mapping(let m):
            for (k, v) in m { try add(k.string ?? "", v, at.child(k.string ?? "", v)) }
        case .sequence(let items):
            for (i, item) in items.enumerated() {
                let here = at.index(i, item)
                switch item {
                case .sequence(let pair) where pair.count == 2:
                    try add(try scalar(pair[0], here), pair[1], here)
                case .mapping(let m) where m.count == 1:
                    try add(m[m.startIndex].key.string ?? "", m[m.startIndex].value, here)
                case .scalar(let s) where s.string.contains(":"):
                    let parts = s.string.split(separator: ":", maxSplits: 1).map { $0.trimmed }
                    try add(parts[0], .scalar(Node.Scalar(parts.count > 1 ? parts[1] : "")), here)
                default:
                    throw here.error("a header must be [name, value], {name: value} or \"name: value\"")
                }
            }
        case .scalar where node.isNull:
            break
        default:
            throw at.error("must be a map of name: value, or a list of [name, value] pairs")
        }
        return out
    }

    /// A string, or a list of strings (sent as separate chunks).
    private static func body(_ node: Node, _ at: Where) throws -> [String] {
        switch node {
        case .sequence(let chunks):
            return try chunks.enumerated().map { i, c in try scalar(c, at.index(i, c)) }.filter { !$0.isEmpty }
        case .scalar where node.isNull:
            return []
        default:
            let s = try scalar(node, at)
            return s.isEmpty ? [] : [s]
        }
    }

    private static func json(_ node: Node, _ at: Where) throws -> JSONValue {
        do { return try NodeDecoder().decode(JSONValue.self, from: node) } catch {
            throw at.error("cannot read: \(error)")
        }
    }

    /// A body without a length gets a content-length, as a client would send it (not with
    /// trailers: that body is chunked).
    private static func addLength(_ headers: inout [(String, String)], _ body: [String], chunked: Bool) {
        guard !body.isEmpty, !chunked,
              !headers.contains(where: { $0.0 == "content-length" || $0.0 == "transfer-encoding" }) else { return }
        headers.append(("content-length", String(body.reduce(0) { $0 + $1.utf8.count })))
    }
}
