#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import NIOConcurrencyHelpers

/// Every resource read from a set of YAML files, in load order (sorted paths, then document
/// order), plus what could not be read at all. A value: equal inputs give equal stores.
public struct ConfigStore: Sendable, Equatable {
    /// All resources as loaded, duplicates included.
    public private(set) var resources: [Resource]
    /// Files or documents that could not become resources: unreadable, invalid YAML, unknown kind.
    public private(set) var loadErrors: [ValidationError]
    /// Documents skipped because meshd does not implement their kind (Kubernetes kinds,
    /// Gateway API, EnvoyFilter, …), each with what to use instead.
    public private(set) var loadWarnings: [ValidationError]
    /// The mesh-wide settings (`--mesh-config`); Istio's defaults when none is given.
    public var meshConfig = MeshConfig()
    /// The secrets the resources name (`credentialName`…), read from the secret directories
    /// beside the YAML (`CredentialReader`); part of the value, so a rotated secret is a change.
    public var credentials: [String: TLSCredential] = [:]
    /// How long a proxy keeps a JWKS fetched from a `jwksUri` (Envoy's remote_jwks
    /// `cache_duration`, 5 min by default); `control-plane --jwks-cache-duration-ms`.
    public var jwksCacheDurationMs: Int?

    public init(resources: [Resource] = [], loadErrors: [ValidationError] = [], loadWarnings: [ValidationError] = []) {
        self.resources = resources
        self.loadErrors = loadErrors
        self.loadWarnings = loadWarnings
    }

    /// Reads every `*.yaml` / `*.yml` under `directory`, nested folders included, in sorted
    /// path order. Hidden files and folders (`.git`, Kubernetes' `..data`) are skipped.
    /// Throws only when the directory itself cannot be read.
    public static func load(directory: String) throws -> ConfigStore {
        try load(directory: directory, cache: nil)
    }

    /// The same, reusing from `cache` what was parsed from files whose text has not changed
    /// since the last load with that cache.
    public static func load(directory: String, cache: ParseCache?) throws -> ConfigStore {
        var store = ConfigStore()
        let files = try yamlFiles(under: directory)
        for file in files { store.add(file: file, cache: cache) }
        cache?.keep(only: Set(files))
        return store
    }

    /// Reads the given files (a directory among them is read as by `load(directory:)`).
    public static func load(files: [String]) -> ConfigStore {
        var store = ConfigStore()
        for path in files {
            var isDirectory = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory {
                do {
                    for file in try yamlFiles(under: path) { store.add(file: file) }
                } catch {
                    store.loadErrors.append(ValidationError(location: SourceLocation(file: path, line: 1),
                                                            reason: "cannot read directory: \(error.plainDescription)"))
                }
            } else {
                store.add(file: path)
            }
        }
        return store
    }

    /// Parses YAML text as if read from `file` (which also anchors relative plugin paths).
    public static func parse(yaml: String, file: String = "<input>") -> ConfigStore {
        var store = ConfigStore()
        store.add(yaml: yaml, file: file)
        return store
    }

    public mutating func add(file: String) {
        add(file: file, cache: nil)
    }

    mutating func add(file: String, cache: ParseCache?) {
        guard let data = FileManager.default.contents(atPath: file) else {
            loadErrors.append(ValidationError(location: SourceLocation(file: file, line: 1), reason: "cannot read file"))
            return
        }
        guard let text = String(data: data, encoding: .utf8) else {
            loadErrors.append(ValidationError(location: SourceLocation(file: file, line: 1), reason: "file is not UTF-8 text"))
            return
        }
        let out = cache?.parse(text, file: file) ?? DocumentParser.parse(text, file: file)
        resources += out.resources
        loadErrors += out.errors
        loadWarnings += out.warnings
    }

    public mutating func add(yaml: String, file: String) {
        let out = DocumentParser.parse(yaml, file: file)
        resources += out.resources
        loadErrors += out.errors
        loadWarnings += out.warnings
    }

    /// What files parsed into, by path, kept while their text stays the same: the control
    /// plane loads the whole directory on every change, and parsing YAML is most of a load.
    /// A file with a LuaPlugin is always parsed again, as its source may come from another file.
    public final class ParseCache: Sendable {
        private let files = NIOLockedValueBox<[String: (text: String, output: DocumentParser.Output)]>([:])

        public init() {}

        func parse(_ text: String, file: String) -> DocumentParser.Output {
            if let hit = files.withLockedValue({ $0[file] }), hit.text == text { return hit.output }
            let output = DocumentParser.parse(text, file: file)
            guard !output.resources.contains(where: { $0.kind == .luaPlugin }) else {
                files.withLockedValue { $0[file] = nil }
                return output
            }
            files.withLockedValue { $0[file] = (text, output) }
            return output
        }

        func keep(only paths: Set<String>) {
            files.withLockedValue { $0 = $0.filter { paths.contains($0.key) } }
        }

        var count: Int { files.withLockedValue { $0.count } }
    }

    public mutating func add(_ resource: Resource) {
        resources.append(resource)
    }

    static func yamlFiles(under directory: String) throws -> [String] {
        let fm = FileManager.default
        let base = URL(fileURLWithPath: directory)
        var files: [String] = []
        func walk(_ url: URL, _ display: String) throws {
            for name in try fm.contentsOfDirectory(atPath: url.path).sorted() where !name.hasPrefix(".") {
                let child = url.appendingPathComponent(name)
                let shown = display.hasSuffix("/") ? display + name : display + "/" + name
                var isDirectory = false
                guard fm.fileExists(atPath: child.path, isDirectory: &isDirectory) else { continue }
                if isDirectory {
                    try walk(child, shown)
                } else if name.hasSuffix(".yaml") || name.hasSuffix(".yml") {
                    files.append(shown)
                }
            }
        }
        try walk(base, directory)
        return files.sorted()
    }

    // MARK: effective view

    /// The resources that count: for each `Kind/namespace/name` the last one loaded (as
    /// `kubectl apply` of the files in order would leave it), in load order.
    public var effective: [Resource] {
        var last: [String: Int] = [:]
        for (i, r) in resources.enumerated() { last[r.id] = i }
        return resources.enumerated().filter { last[$0.element.id] == $0.offset }.map(\.element)
    }

    /// Resources defined more than once: each later definition with the one it replaces.
    public var duplicates: [(replaced: Resource, by: Resource)] {
        var seen: [String: Resource] = [:]
        var out: [(Resource, Resource)] = []
        for r in resources {
            if let earlier = seen[r.id] { out.append((earlier, r)) }
            seen[r.id] = r
        }
        return out
    }

    private func typed<T>(_ extract: (ResourceSpec) -> T?) -> [Config<T>] {
        effective.compactMap { r in
            extract(r.spec).map { Config(kind: r.kind, meta: r.meta, location: r.location, spec: $0) }
        }
    }

    public var virtualServices: [Config<VirtualService>] {
        typed { if case .virtualService(let s) = $0 { s } else { nil } }
    }
    public var destinationRules: [Config<DestinationRule>] {
        typed { if case .destinationRule(let s) = $0 { s } else { nil } }
    }
    public var peerAuthentications: [Config<PeerAuthentication>] {
        typed { if case .peerAuthentication(let s) = $0 { s } else { nil } }
    }
    public var gateways: [Config<Gateway>] {
        typed { if case .gateway(let s) = $0 { s } else { nil } }
    }
    public var serviceEntries: [Config<ServiceEntry>] {
        typed { if case .serviceEntry(let s) = $0 { s } else { nil } }
    }
    public var workloadEntries: [Config<WorkloadEntry>] {
        typed { if case .workloadEntry(let s) = $0 { s } else { nil } }
    }
    public var sidecars: [Config<Sidecar>] {
        typed { if case .sidecar(let s) = $0 { s } else { nil } }
    }
    public var luaPlugins: [Config<LuaPluginSpec>] {
        typed { if case .luaPlugin(let s) = $0 { s } else { nil } }
    }
    public var trafficExtensions: [Config<TrafficExtension>] {
        typed { if case .trafficExtension(let s) = $0 { s } else { nil } }
    }
    public var telemetries: [Config<Telemetry>] {
        typed { if case .telemetry(let s) = $0 { s } else { nil } }
    }
}
