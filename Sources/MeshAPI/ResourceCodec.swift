#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One named, versioned resource as the discovery stream carries it.
public struct ResourceEntry: Sendable, Equatable {
    public var name: String
    public var version: String
    public var body: [UInt8]

    public init(name: String, version: String, body: [UInt8]) {
        self.name = name
        self.version = version
        self.body = body
    }
}

/// Splits a Bootstrap into resources ("listener/…", "route/…", "cluster/…", "plugin/…",
/// "telemetry/proxy") with
/// content versions, and puts resources back together. Both ends of the discovery stream
/// use it, so the control plane can send only what changed.
public enum ResourceCodec {
    public struct DecodeError: Error, CustomStringConvertible {
        public let resource: String
        public let reason: String
        public var description: String { "resource \(resource): \(reason)" }
    }

    public static func resources(of bootstrap: Bootstrap) -> [String: ResourceEntry] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var out: [String: ResourceEntry] = [:]
        func add<T: Encodable>(_ kind: String, _ name: String, _ value: T) {
            let body = Array((try? encoder.encode(value)) ?? Data())
            let key = "\(kind)/\(name)"
            out[key] = ResourceEntry(name: key, version: fnv1a(body), body: body)
        }
        for l in bootstrap.listeners { add("listener", l.name, l) }
        for r in bootstrap.routeConfigs { add("route", r.name, r) }
        for c in bootstrap.clusters { add("cluster", c.name, c) }
        for p in bootstrap.luaPlugins { add("plugin", p.name, p) }
        if let t = bootstrap.telemetry { add("telemetry", "proxy", t) }
        return out
    }

    public static func bootstrap(from entries: [String: ResourceEntry]) throws -> Bootstrap {
        let decoder = JSONDecoder()
        var b = Bootstrap()
        for key in entries.keys.sorted() {
            let entry = entries[key]!
            let kind = key.prefix { $0 != "/" }
            do {
                switch kind {
                case "listener": b.listeners.append(try decoder.decode(Listener.self, from: Data(entry.body)))
                case "route": b.routeConfigs.append(try decoder.decode(RouteConfig.self, from: Data(entry.body)))
                case "cluster": b.clusters.append(try decoder.decode(Cluster.self, from: Data(entry.body)))
                case "plugin": b.luaPlugins.append(try decoder.decode(LuaPlugin.self, from: Data(entry.body)))
                case "telemetry": b.telemetry = try decoder.decode(ProxyTelemetry.self, from: Data(entry.body))
                default: throw DecodeError(resource: key, reason: "unknown resource type '\(kind)'")
                }
            } catch let e as DecodeError {
                throw e
            } catch {
                throw DecodeError(resource: key, reason: "\(error)")
            }
        }
        return b
    }

    /// A short content hash (FNV-1a, 64 bit) in hex, always 16 digits.
    public static func fnv1a(_ bytes: [UInt8]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
