import NIOConcurrencyHelpers

/// Admits a loaded directory file by file, as istiod admits resources one by one: a file with
/// an error (invalid YAML, an unknown kind, a resource that fails validation) is refused
/// alone — the version of it last admitted stays in use, as a refused `kubectl apply` leaves
/// the cluster's copy — and every other file applies. One instance per watched directory.
public final class FileAdmission: Sendable {
    public struct Outcome: Sendable, Equatable {
        /// What to serve: the good files as loaded, the refused ones as last admitted.
        public var store: ConfigStore
        /// Why files were refused, each error at its own line.
        public var refused: [ValidationError]
        /// Skipped kinds and fields not enforced, in what is served.
        public var warnings: [ValidationError]
        /// The refused files, sorted.
        public var refusedFiles: [String] { Set(refused.map(\.location.file)).sorted() }
    }

    /// Each file's resources as last admitted.
    private let admitted = NIOLockedValueBox<[String: [Resource]]>([:])

    public init() {}

    /// `meshConfig`: the one to serve with (Telemetry providers are checked against it).
    public func admit(_ loaded: ConfigStore, meshConfig: MeshConfig = MeshConfig()) -> Outcome {
        let refused = loaded.loadErrors + Validator.validate(loaded.resources, meshConfig: meshConfig)
        let bad = Set(refused.map(\.location.file))
        var byFile: [String: [Resource]] = [:]
        for r in loaded.resources { byFile[r.location.file, default: []].append(r) }
        let files = Set(byFile.keys).union(bad).sorted()
        let served = admitted.withLockedValue { admitted -> [Resource] in
            var out: [Resource] = []
            var next: [String: [Resource]] = [:]
            for file in files {
                let resources = bad.contains(file) ? admitted[file] ?? [] : byFile[file] ?? []
                if !resources.isEmpty { next[file] = resources }
                out += resources
            }
            admitted = next
            return out
        }
        let skipped = loaded.loadWarnings.filter { !bad.contains($0.location.file) }
        let store = ConfigStore(resources: served, loadWarnings: skipped)
        return Outcome(store: store, refused: refused, warnings: skipped + Validator.warnings(served))
    }
}
