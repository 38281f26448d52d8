import ControlPlane
import MeshAPI
import XCTest

/// The mesh config's `meshdLuaPlugin` extension provider: a CUSTOM policy decided by a
/// LuaPlugin in the proxy. Decoding, the reference to the plugin, and translation.
final class LuaAuthorizerProviderTests: XCTestCase {
    static let mesh = """
    rootNamespace: istio-system
    extensionProviders:
    - name: lua-authz
      meshdLuaPlugin:
        plugin: foo/authz
        failOpen: true
        statusOnError: "503"
    """

    static let resources = """
    apiVersion: extensions.meshd.io/v1alpha1
    kind: LuaPlugin
    metadata: {name: authz, namespace: foo}
    spec:
      pluginConfig: {allow: alice}
      limits: {instructions: 50000}
      inline: |
        function envoy_on_request(handle) end
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: ext, namespace: foo}
    spec:
      action: CUSTOM
      provider: {name: lua-authz}
      rules: [{to: [{operation: {paths: ["/api*"]}}]}]
    """

    func testTheProviderIsReadAndEnforced() throws {
        let loaded = MeshConfigFile.parse(Self.mesh, file: "mesh.yaml")
        XCTAssertEqual(loaded.errors, [])
        XCTAssertEqual(loaded.warnings, [], "meshdLuaPlugin is enforced")
        guard case .meshdLuaPlugin(let lua)? = loaded.config?.provider(named: "lua-authz")?.kind else {
            return XCTFail("lua-authz is a meshdLuaPlugin provider")
        }
        XCTAssertTrue(lua.failOpen)
        XCTAssertEqual(lua.statusOnError, "503")
        XCTAssertTrue(lua.reference(rootNamespace: "istio-system") == ("foo", "authz"))
        XCTAssertEqual(lua.pluginLocation, SourceLocation(file: "mesh.yaml", line: 5))
        let bare = try XCTUnwrap(MeshConfigFile.parse("extensionProviders: [{name: a, meshdLuaPlugin: {plugin: authz}}]",
                                                      file: "m.yaml").config)
        guard case .meshdLuaPlugin(let b)? = bare.provider(named: "a")?.kind else { return XCTFail("a") }
        XCTAssertTrue(b.reference(rootNamespace: bare.rootNamespace) == ("istio-system", "authz"), "a bare name is in the root namespace")
        XCTAssertFalse(b.failOpen)
    }

    func testBadValuesAreRefusedAtTheirLines() {
        let loaded = MeshConfigFile.parse("""
        extensionProviders:
        - name: a
          meshdLuaPlugin: {plugin: a/b/c}
        - name: b
          meshdLuaPlugin: {statusOnError: "often"}
        """, file: "m.yaml")
        XCTAssertNil(loaded.config)
        XCTAssertEqual(Set(loaded.errors.map { "\($0.location.line) \($0.path): \($0.reason)" }), [
            "3 extensionProviders[0].meshdLuaPlugin.plugin: must be <namespace>/<name> or <name> of a LuaPlugin",
            "5 extensionProviders[1].meshdLuaPlugin.plugin: required field is missing",
            "5 extensionProviders[1].meshdLuaPlugin.statusOnError: \"often\" is not an HTTP status",
        ])
    }

    /// A provider naming a LuaPlugin that is not there is warned at its `plugin` field.
    func testAnUnknownPluginIsWarnedWhereTheMeshConfigNamesIt() throws {
        var store = ConfigStore.parse(yaml: Self.resources)
        store.meshConfig = try XCTUnwrap(MeshConfigFile.parse(Self.mesh, file: "mesh.yaml").config)
        XCTAssertEqual(MeshConfigFile.referenceWarnings(store.meshConfig, store: store), [])
        let missing = MeshConfigFile.parse(Self.mesh.replacingOccurrences(of: "foo/authz", with: "foo/nope"), file: "mesh.yaml")
        XCTAssertEqual(MeshConfigFile.referenceWarnings(try XCTUnwrap(missing.config), store: store).map(\.description), [
            #"mesh.yaml:5: warning: MeshConfig: extensionProviders[0].meshdLuaPlugin.plugin: no LuaPlugin foo/nope; CUSTOM policies naming provider "lua-authz" deny every request their rules match"#,
        ])
    }

    /// The RBAC filter gets the plugin's code and settings as the provider; the plugin is
    /// not a filter of its own chain. Without the plugin, the policy denies and is announced.
    func testTheCustomPolicyCarriesThePluginAndThePluginRunsNowhereElse() throws {
        let proxy = ProxyIdentity.sidecar(name: "x", namespace: "foo", appPort: 80)
        var store = ConfigStore.parse(yaml: Self.resources)
        store.meshConfig = try XCTUnwrap(MeshConfigFile.parse(Self.mesh, file: "mesh.yaml").config)
        let t = Translator(store: store).translate(for: proxy)
        XCTAssertFalse(t.warnings.contains { $0.contains("lua-authz") || $0.contains("authz") }, "\(t.warnings)")
        XCTAssertEqual(t.bootstrap.luaPlugins.map(\.name), [], "an authorizer is not attached to chains")
        let rbac = try XCTUnwrap(t.bootstrap.listeners.first { $0.name == "inbound" }?.securityFilters?.first { $0.name == "meshd.rbac" })
        XCTAssertEqual(rbac.config?["providers"]?["lua-authz"], .object([
            "luaPlugin": .object([
                "name": .string("foo.authz"), "inlineCode": .string("function envoy_on_request(handle) end\n"),
                "pluginConfig": .object(["allow": .string("alice")]), "limits": .object(["instructions": .number(50000)]),
            ]),
            "failOpen": .bool(true), "statusOnError": .number(503),
        ]))

        // Where it would attach and its own failStrategy do not apply to an authorizer: warned.
        var attached = ConfigStore.parse(yaml: Self.resources.replacingOccurrences(
            of: "  pluginConfig:", with: "  selector: {matchLabels: {app: x}}\n  failStrategy: FAIL_CLOSE\n  pluginConfig:"))
        attached.meshConfig = store.meshConfig
        let warned = Translator(store: attached).translate(for: proxy)
        XCTAssertEqual(warned.bootstrap.luaPlugins.map(\.name), [])
        XCTAssertEqual(warned.warnings.filter { $0.hasPrefix("LuaPlugin/foo/authz") }.map { $0.components(separatedBy: ": ")[1] }.sorted(),
                       ["spec.failStrategy", "spec.selector"], "\(warned.warnings)")

        store.meshConfig = try XCTUnwrap(MeshConfigFile.parse(Self.mesh.replacingOccurrences(of: "foo/authz", with: "foo/nope"),
                                                              file: "mesh.yaml").config)
        let missing = Translator(store: store).translate(for: proxy)
        XCTAssertTrue(missing.warnings.contains { $0.contains("names LuaPlugin foo/nope, which does not exist") }, "\(missing.warnings)")
        let denying = try XCTUnwrap(missing.bootstrap.listeners.first { $0.name == "inbound" }?.securityFilters?.first { $0.name == "meshd.rbac" })
        XCTAssertNil(denying.config?["providers"]?["lua-authz"], "a policy whose provider is missing denies what it matches")
    }
}
