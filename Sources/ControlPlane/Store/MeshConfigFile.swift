#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import YAML

/// Reads Istio's mesh config from a file: a MeshConfig document (what istiod's `--meshConfig`
/// file holds), or the `istio` ConfigMap whose `data.mesh` holds one (as
/// `kubectl get configmap istio -n istio-system -o yaml` prints it).
public enum MeshConfigFile {
    public struct Loaded: Sendable {
        /// nil when the file cannot be used (unreadable, invalid YAML, a field error).
        public var config: MeshConfig?
        public var errors: [ValidationError]
        /// Fields meshd does not enforce, each at its own line.
        public var warnings: [ValidationError]
    }

    static let resource = "MeshConfig"

    public static func load(path: String) -> Loaded {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            return Loaded(config: nil, errors: [ValidationError(location: SourceLocation(file: path, line: 1),
                                                                resource: resource, reason: "cannot read the mesh config file")],
                          warnings: [])
        }
        return parse(text, file: path)
    }

    public static func parse(_ text: String, file: String, lineOffset: Int = 0) -> Loaded {
        func failure(_ line: Int, _ path: String, _ reason: String) -> Loaded {
            Loaded(config: nil, errors: [ValidationError(location: SourceLocation(file: file, line: line + lineOffset),
                                                         resource: resource, path: path, reason: reason)], warnings: [])
        }
        let root: Node?
        do {
            root = try YAMLParser.compose(text)
        } catch {
            return failure(1, "", "invalid YAML: \(error)")
        }
        guard let root, case .mapping(let top) = root else {
            if root == nil || root?.isNull == true { return Loaded(config: MeshConfig(), errors: [], warnings: []) }
            return failure(root?.mark?.line ?? 1, "", "the mesh config must be a map")
        }
        if top["kind"]?.string == "ConfigMap" {
            guard let mesh = top["data"]?.mapping?["mesh"], let inner = mesh.string else {
                return failure(root.mark?.line ?? 1, "data.mesh", "a ConfigMap mesh config needs data.mesh (the MeshConfig as a string)")
            }
            // A block scalar's text starts on the line after its key.
            return parse(inner, file: file, lineOffset: lineOffset + (mesh.mark?.line ?? 1))
        }
        let ctx = DecodeContext()
        guard var config: MeshConfig = ObjectReader.decode(root, path: "", ctx: ctx) else {
            return failure(root.mark?.line ?? 1, "", "the mesh config must be a map")
        }
        // A field's own line, else its nearest present ancestor's (a missing required field).
        func location(_ path: String) -> SourceLocation {
            var at = Substring(path)
            while true {
                if let line = ctx.fields.first(where: { $0.path == at })?.line {
                    return SourceLocation(file: file, line: line + lineOffset)
                }
                guard let cut = at.lastIndex(where: { $0 == "." || $0 == "[" }) else { break }
                at = at[..<cut]
            }
            return SourceLocation(file: file, line: 1 + lineOffset)
        }
        for i in config.extensionProviders.indices {
            guard case .meshdLuaPlugin(var lua)? = config.extensionProviders[i].kind else { continue }
            lua.pluginLocation = location(lua.pluginPath)
            config.extensionProviders[i].kind = .meshdLuaPlugin(lua)
        }
        let errors = ctx.issues.map { ValidationError(location: location($0.path), resource: resource, path: $0.path, reason: $0.reason) }
        let warnings = FieldSupport.unenforced(ctx.fields, in: FieldSupport.meshConfig).map { field, what in
            ValidationError(.warning, location: location(field.path), resource: resource, path: field.path, reason: what)
        }
        return errors.isEmpty ? Loaded(config: config, errors: [], warnings: warnings) : Loaded(config: nil, errors: errors, warnings: [])
    }

    /// What the mesh config names in the resources: a `meshdLuaPlugin` provider whose LuaPlugin
    /// is not among `store`'s is warned at its `plugin` field (the CUSTOM policies naming the
    /// provider deny what their rules match until it exists).
    public static func referenceWarnings(_ config: MeshConfig, store: ConfigStore) -> [ValidationError] {
        config.extensionProviders.compactMap { provider in
            guard case .meshdLuaPlugin(let lua)? = provider.kind else { return nil }
            let (namespace, name) = lua.reference(rootNamespace: config.rootNamespace)
            guard !store.luaPlugins.contains(where: { $0.namespace == namespace && $0.name == name }) else { return nil }
            return ValidationError(.warning, location: lua.pluginLocation ?? SourceLocation(file: "mesh config", line: 1),
                                   resource: resource, path: lua.pluginPath,
                                   reason: "no LuaPlugin \(namespace)/\(name); CUSTOM policies naming provider \"\(provider.name)\" deny every request their rules match")
        }
    }
}
