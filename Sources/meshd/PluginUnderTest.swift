import ControlPlane
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import PluginTesting

/// The plugin `meshd plugin test` runs: a Lua file, or the LuaPlugin / TrafficExtension of a
/// YAML file, read by the control plane's own parser and checked by its validator.
struct PluginUnderTest {
    var source: String
    /// The chunk and plugin name: a Lua file's name without `.lua`; for a resource the name the
    /// proxy gives it (`NAMESPACE.NAME`).
    var name: String
    /// The resource's settings (defaults for a Lua file); a `--config` file overrides them.
    var settings = PluginTestConfig()
    /// Where it came from, for the report and messages.
    var origin: String

    /// Why the input cannot be tested; each message is printed as is (exit status 2).
    struct InputError: Error {
        var messages: [String]
        init(_ messages: String...) { self.messages = messages }
        init(_ messages: [String]) { self.messages = messages }
    }

    static func isResourceFile(_ path: String) -> Bool {
        path.hasSuffix(".yaml") || path.hasSuffix(".yml")
    }

    /// The one Lua plugin of `path`, or the one `wanted` names (`NAME`, `NAMESPACE/NAME` or `KIND/NAMESPACE/NAME`).
    static func resource(_ path: String, wanted: String?) throws(InputError) -> PluginUnderTest {
        let store = ConfigStore.load(files: [path])
        guard store.loadErrors.isEmpty else { throw InputError(store.loadErrors.map(\.description)) }
        let plugins = PluginDefinition.all(in: store)
        let chosen = try choose(plugins, wanted: wanted, path: path, store: store)
        guard let resource = store.effective.first(where: { $0.id == chosen.id }) else {
            throw InputError("\(path): \(chosen.id) not found")
        }
        if case .luaPlugin(let spec) = resource.spec, let url = spec.url, !url.hasPrefix("file://") {
            throw InputError("\(resource.location): \(resource.id): spec.url: meshd plugin test runs offline and does not "
                             + "fetch \(url); give the code inline (spec.inline) or as a file (spec.file), or test the .lua file")
        }
        let errors = Validator.validate(resource)
        guard errors.isEmpty else { throw InputError(errors.map(\.description)) }
        guard let plugin = chosen.proxyPlugin() else { throw InputError("\(resource.location): \(resource.id): no Lua code") }
        do {
            return PluginUnderTest(source: plugin.inlineCode, name: plugin.name, settings: try PluginTestConfig(plugin: plugin),
                                   origin: "\(chosen.id), \(chosen.location)")
        } catch {
            throw InputError("\(resource.location): \(resource.id): \(error)")
        }
    }

    private static func choose(_ plugins: [PluginDefinition], wanted: String?, path: String,
                               store: ConfigStore) throws(InputError) -> PluginDefinition {
        guard !plugins.isEmpty else {
            let wasm = store.trafficExtensions.filter { $0.spec.lua == nil }.map(\.id)
            throw InputError("\(path): no LuaPlugin (extensions.meshd.io/v1alpha1) or TrafficExtension with lua "
                             + "(extensions.istio.io/v1alpha1) in this file"
                             + (wasm.isEmpty ? "" : "; meshd does not run Wasm (\(wasm.joined(separator: ", ")))"))
        }
        let list = plugins.map(\.id).joined(separator: ", ")
        guard let wanted else {
            guard plugins.count == 1 else {
                throw InputError("\(path) has \(plugins.count) plugins (\(list)): choose one with --name NAME or --name NAMESPACE/NAME")
            }
            return plugins[0]
        }
        let matches = plugins.filter { $0.name == wanted || "\($0.namespace)/\($0.name)" == wanted || $0.id == wanted }
        guard matches.count == 1 else {
            throw InputError(matches.isEmpty
                ? "\(path): no plugin named \(wanted) (plugins: \(list))"
                : "\(path): several plugins are named \(wanted): give one of \(matches.map(\.id).joined(separator: ", ")) as --name")
        }
        return matches[0]
    }
}
