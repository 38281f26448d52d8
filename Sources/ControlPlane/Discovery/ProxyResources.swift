import LuaRuntime
import Transport
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import NIOConcurrencyHelpers
import NIOCore
import SwiftProtobuf

/// One proxy's resources as the discovery stream sends them: the ones it shares with proxies
/// like it (one encoded copy, referenced by all of them) and its own (its listeners, its
/// inbound side). A name is in one of the two, never both.
public struct ProxyResources: Sendable {
    public let shared: SharedResources
    public let own: [String: ResourceEntry]
    /// A content hash of every name and version: equal resources, equal versions.
    public let version: String
    /// The warnings of the config these were made from (not sent; shown by proxy-status).
    public let warnings: [String]
    /// A content hash per resource type ("cluster", "listener", "route", "plugin"), so
    /// proxy-status can say which types a proxy has acknowledged.
    public let typeVersions: [String: String]

    public init(shared: SharedResources, own: [String: ResourceEntry], warnings: [String] = []) {
        self.shared = shared
        self.own = own
        self.warnings = warnings
        let ownPart = own.keys.sorted().map { "\($0)=\(own[$0]!.version)" }.joined(separator: ";")
        version = ResourceCodec.fnv1a(Array("\(shared.version)|\(ownPart)".utf8))
        let ownTypes = SharedResources.typeVersions(own)
        typeVersions = Dictionary(uniqueKeysWithValues: Set(ownTypes.keys).union(shared.typeVersions.keys).map { type in
            (type, ResourceCodec.fnv1a(Array("\(shared.typeVersions[type] ?? "")|\(ownTypes[type] ?? "")".utf8)))
        })
    }

    /// A whole Bootstrap as the proxy's own resources (nothing shared).
    public init(_ bootstrap: Bootstrap) {
        self.init(shared: .empty, own: ResourceCodec.resources(of: bootstrap))
    }

    /// Every resource, by name.
    public var all: [String: ResourceEntry] { shared.entries.merging(own) { a, _ in a } }

    public subscript(name: String) -> ResourceEntry? { own[name] ?? shared.entries[name] }
}

/// Resources that many proxies receive alike. Their protobuf encoding is made once and
/// cached — all of them, and what changed since another `SharedResources` — so a push to a
/// thousand proxies serializes (and holds in memory) one copy, not a thousand.
public final class SharedResources: Sendable {
    public static let empty = SharedResources([:])

    public let entries: [String: ResourceEntry]
    /// A content hash of every name and version.
    public let version: String
    /// The same per resource type (the name's part before "/").
    public let typeVersions: [String: String]
    private let encoded = NIOLockedValueBox(Encoded())

    private struct Encoded {
        var full: ByteBuffer?
        var types: Set<String>?
        /// Changes from a few earlier sets, most recent last.
        var diffs: [Diff] = []
    }

    private struct Diff: Sendable {
        /// Weak: an earlier set is not kept alive by later ones (nor a chain of them). Once it
        /// is gone this entry matches nothing, even if another object reuses its address.
        weak var from: SharedResources?
        var bytes: ByteBuffer
        /// `PushMetrics` types of what changed.
        var types: Set<String>
    }

    static let diffsKept = 8

    public init(_ entries: [String: ResourceEntry]) {
        self.entries = entries
        let joined = entries.keys.sorted().map { "\($0)=\(entries[$0]!.version)" }.joined(separator: ";")
        version = ResourceCodec.fnv1a(Array(joined.utf8))
        typeVersions = Self.typeVersions(entries)
    }

    static func typeVersions(_ entries: [String: ResourceEntry]) -> [String: String] {
        var parts: [String: String] = [:]
        for name in entries.keys.sorted() {
            parts[String(name.prefix { $0 != "/" }), default: ""] += "\(name)=\(entries[name]!.version);"
        }
        return parts.mapValues { ResourceCodec.fnv1a(Array($0.utf8)) }
    }

    /// Every resource, as the `resources` field of a DiscoveryResponse (no other field set).
    func fullEncoding() -> ByteBuffer {
        if let full = encoded.withLockedValue({ $0.full }) { return full }
        let bytes = Self.encode(changed: entries, removed: [])
        encoded.withLockedValue { $0.full = bytes }
        return bytes
    }

    /// What changed since `old`: changed and new resources, and the names `old` had that are
    /// gone, as the `resources` and `removed_resources` fields of a DiscoveryResponse.
    func changeEncoding(since old: SharedResources) -> ByteBuffer { change(since: old).bytes }

    /// `changeEncoding`, and the `PushMetrics` types of the resources in it.
    func change(since old: SharedResources) -> (bytes: ByteBuffer, types: Set<String>) {
        if old === self { return (ByteBuffer(), []) }
        if let hit = encoded.withLockedValue({ e in e.diffs.last { $0.from === old } }) { return (hit.bytes, hit.types) }
        let changed = entries.filter { old.entries[$0.key]?.version != $0.value.version }
        let removed = old.entries.keys.filter { entries[$0] == nil }
        let bytes = Self.encode(changed: changed, removed: removed)
        let types = Set((changed.keys + removed).map(PushMetrics.type(ofResource:)))
        encoded.withLockedValue { e in
            e.diffs.append(Diff(from: old, bytes: bytes, types: types))
            if e.diffs.count > Self.diffsKept { e.diffs.removeFirst(e.diffs.count - Self.diffsKept) }
        }
        return (bytes, types)
    }

    /// The `PushMetrics` types of every resource (what a full push carries).
    var types: Set<String> {
        if let cached = encoded.withLockedValue({ $0.types }) { return cached }
        let types = Set(entries.keys.map(PushMetrics.type(ofResource:)))
        encoded.withLockedValue { $0.types = types }
        return types
    }

    /// Resources sorted by name. Protobuf messages concatenate: these bytes after an encoded
    /// response with the other fields parse as one response with both sets of resources.
    static func encode(changed: [String: ResourceEntry], removed: [String]) -> ByteBuffer {
        var r = Meshd_Discovery_V1_DiscoveryResponse()
        r.resources = changed.keys.sorted().map { name in
            var res = Meshd_Discovery_V1_Resource()
            res.name = name
            res.version = changed[name]!.version
            res.body = Data(changed[name]!.body)
            return res
        }
        r.removedResources = removed.sorted()
        let bytes: [UInt8] = (try? r.serializedBytes()) ?? []
        return ByteBuffer(bytes: bytes)
    }
}
