import ControlPlane
import FilterHost
import MeshAPI
import XCTest
import Transport
import LuaRuntime
import Filters
import PluginTesting

final class PluginTranslationTests: XCTestCase {
    private let productpage = ProxyIdentity.sidecar(name: "productpage-v1", labels: ["app": "productpage"], appPort: 9080)
    private let ingress = ProxyIdentity.gateway(name: "ingress", namespace: "istio-system", labels: ["istio": "ingressgateway"])

    private let routes = """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews}
    spec:
      hosts: [reviews]
      http:
      - name: jason
        match: [{headers: {end-user: {exact: jason}}}]
        route: [{destination: {host: reviews, subset: v2}}]
      - name: rest
        route: [{destination: {host: reviews, subset: v1}}]
    ---

    """

    func testTargetRefsVirtualServiceWithSectionName() throws {
        let plugin = routes + """
        apiVersion: extensions.meshd.io/v1alpha1
        kind: LuaPlugin
        metadata: {name: jason-tagger}
        spec:
          targetRefs: [{kind: VirtualService, name: reviews, sectionName: jason}]
          phase: AUTHZ
          priority: 10
          failStrategy: FAIL_CLOSE
          pluginConfig: {header: x-jason, count: 2}
          limits: {instructions: 100000, memoryBytes: 1048576}
          inline: |
            function envoy_on_request(h) h:headers():add("x-jason", "1") end
        """
        let store = try bookinfoStore(self, samples: ["destination-rule-all.yaml", "bookinfo-gateway.yaml"], extra: plugin)
        let b = Translator(store: store).bootstrap(for: productpage)
        assertSnapshotBuilds(b)
        XCTAssertEqual(b.luaPlugins, [LuaPlugin(
            name: "default.jason-tagger", phase: "AUTHZ", priority: 10, failStrategy: "FAIL_CLOSE",
            inlineCode: "function envoy_on_request(h) h:headers():add(\"x-jason\", \"1\") end",
            pluginConfig: .object(["header": .string("x-jason"), "count": .number(2)]),
            limits: LuaPluginLimits(instructions: 100000, memoryBytes: 1048576),
            attachTo: PluginAttachment(virtualHosts: ["vs:default/reviews"], routes: ["jason"]))])
        let vhost = try XCTUnwrap(b.routeConfig("outbound")?.virtualHost(domain: "reviews"))
        XCTAssertEqual(vhost.name, "vs:default/reviews")
        XCTAssertEqual(vhost.routes.map(\.name), ["jason", "rest"])
        // The gateway has no virtual host from that VirtualService: the plugin is not sent to it.
        XCTAssertEqual(Translator(store: store).bootstrap(for: ingress).luaPlugins, [])
    }

    /// Found by fuzzing (FuzzIstio): a sectionName naming no http route of the VirtualService
    /// went to the proxy as `attachTo.routes`, and the proxy refused the whole config.
    func testSectionNameOfNoRouteIsSkippedWithAWarning() throws {
        let yaml = bookinfoRegistryYAML + "\n---\n" + routes + """
        apiVersion: extensions.meshd.io/v1alpha1
        kind: LuaPlugin
        metadata: {name: tagger}
        spec:
          targetRefs:
          - {kind: VirtualService, name: reviews, sectionName: nope}
          - {kind: VirtualService, name: reviews, sectionName: rest}
          inline: "function envoy_on_request(h) end"
        """
        let t = Translator(store: ConfigStore.parse(yaml: yaml)).translate(for: productpage)
        assertSnapshotBuilds(t.bootstrap)
        XCTAssertEqual(t.bootstrap.luaPlugins.map(\.attachTo), [PluginAttachment(virtualHosts: ["vs:default/reviews"], routes: ["rest"])])
        XCTAssertTrue(t.warnings.contains(
            "LuaPlugin/default/tagger: spec.targetRefs[0].sectionName: VirtualService/default/reviews has no http route named \"nope\" here; target skipped"),
            "\(t.warnings)")
    }

    func testLimitsAreTranslatedAndChecked() throws {
        let store = ConfigStore.parse(yaml: """
        apiVersion: extensions.meshd.io/v1alpha1
        kind: LuaPlugin
        metadata: {name: limited}
        spec:
          selector: {matchLabels: {app: productpage}}
          inline: "function envoy_on_request(h) end"
          limits: {maxRunMs: 20, maxPendingCalls: 4, maxPendingCallsPerStream: 2, maxDynamicMetadataBytes: 512,
                   sharedDicts: {api-keys: 4096}}
        ---
        apiVersion: extensions.meshd.io/v1alpha1
        kind: LuaPlugin
        metadata: {name: zero}
        spec:
          inline: "function envoy_on_request(h) end"
          limits: {maxRunMs: 0, sharedDicts: {d: 0}}
        """)
        XCTAssertEqual(Validator.validate(store).map(\.description), [
            "<input>:15: LuaPlugin/default/zero: spec.limits.maxRunMs: must be positive",
            "<input>:15: LuaPlugin/default/zero: spec.limits.sharedDicts.d: must be positive",
        ])
        let limited = Translator(store: store).bootstrap(for: productpage).luaPlugins.first { $0.name.hasSuffix("limited") }
        XCTAssertEqual(limited?.limits, LuaPluginLimits(maxRunMs: 20, maxPendingCalls: 4, maxPendingCallsPerStream: 2,
                                                        maxDynamicMetadataBytes: 512, sharedDicts: ["api-keys": 4096]))
    }

    func testGatewayServiceAndSelectorTargets() throws {
        let plugins = routes + """
        apiVersion: extensions.meshd.io/v1alpha1
        kind: LuaPlugin
        metadata: {name: edge, namespace: default}
        spec:
          targetRefs: [{kind: Gateway, name: bookinfo-gateway}, {kind: Service, name: ratings}, {kind: VirtualService, name: reviews}]
          inline: "function envoy_on_request(h) end"
        ---
        apiVersion: extensions.istio.io/v1alpha1
        kind: TrafficExtension
        metadata: {name: parity, namespace: istio-system}
        spec:
          selector: {matchLabels: {istio: ingressgateway}}
          phase: STATS
          lua: {inlineCode: "function envoy_on_response(h) end"}
        ---
        apiVersion: extensions.meshd.io/v1alpha1
        kind: LuaPlugin
        metadata: {name: server-side}
        spec:
          selector: {matchLabels: {app: productpage}}
          match: [{mode: SERVER}]
          inline: "function envoy_on_request(h) end"
        """
        let store = try bookinfoStore(self, samples: ["destination-rule-all.yaml", "bookinfo-gateway.yaml"], extra: plugins)
        let translator = Translator(store: store)
        let gw = translator.bootstrap(for: .gateway(name: "ingress", namespace: "default", labels: ["istio": "ingressgateway"]))
        assertSnapshotBuilds(gw)
        XCTAssertEqual(gw.luaPlugins.map(\.name), ["default.edge", "istio-system.parity"])
        XCTAssertEqual(gw.luaPlugins[0].attachTo, PluginAttachment(listeners: ["gateway_8080"]))
        XCTAssertEqual(gw.luaPlugins[1].phase, "STATS")
        XCTAssertNil(gw.luaPlugins[1].attachTo)
        let sidecar = translator.bootstrap(for: productpage)
        assertSnapshotBuilds(sidecar)
        XCTAssertEqual(sidecar.luaPlugins.map(\.name), ["default.edge", "default.server-side"])
        XCTAssertEqual(sidecar.luaPlugins[0].attachTo,
                       PluginAttachment(virtualHosts: ["ratings.default.svc.cluster.local:9080", "vs:default/reviews"]))
        XCTAssertEqual(sidecar.luaPlugins[1].attachTo, PluginAttachment(listeners: ["inbound"]))
    }

    func testSourcesFromFilesAndChecksums() throws {
        let dir = try temporaryDirectory(self)
        let code = "function envoy_on_request(h) h:logInfo('hi') end\n"
        try write(code, to: dir + "/config/plugins/hello.lua")
        let sha = "4d8b6f8f1b1c1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70819abc"
        try write("""
        apiVersion: extensions.meshd.io/v1alpha1
        kind: LuaPlugin
        metadata: {name: from-file}
        spec: {file: plugins/hello.lua}
        ---
        apiVersion: extensions.meshd.io/v1alpha1
        kind: LuaPlugin
        metadata: {name: from-url}
        spec: {url: "file://\(dir)/config/plugins/hello.lua", sha256: \(sha)}
        ---
        apiVersion: extensions.meshd.io/v1alpha1
        kind: LuaPlugin
        metadata: {name: remote}
        spec: {url: "https://example.com/hello.lua", sha256: \(sha)}
        ---
        apiVersion: extensions.meshd.io/v1alpha1
        kind: LuaPlugin
        metadata: {name: two-sources}
        spec: {inline: "x = 1", file: plugins/hello.lua, phase: LATE}
        ---
        apiVersion: extensions.meshd.io/v1alpha1
        kind: LuaPlugin
        metadata: {name: no-sum}
        spec: {url: "file://\(dir)/config/plugins/hello.lua"}
        ---
        apiVersion: extensions.meshd.io/v1alpha1
        kind: LuaPlugin
        metadata: {name: missing}
        spec: {file: plugins/nope.lua}
        """, to: dir + "/config/plugins.yaml")
        let store = try ConfigStore.load(directory: dir)
        XCTAssertEqual(store.luaPlugins.first { $0.name == "from-file" }?.spec.code, code)
        let e = Validator.validate(store).map { $0.description.replacingOccurrences(of: dir, with: "DIR") }
        let actual = SHA256Hex.of(code)
        XCTAssertEqual(e, [
            "DIR/config/plugins.yaml:9: LuaPlugin/default/from-url: spec.sha256: does not match the source (its sha256 is \(actual))",
            "DIR/config/plugins.yaml:14: LuaPlugin/default/remote: spec.url: only file:// URLs can be fetched by meshd (got \"https://example.com/hello.lua\"); use file or inline",
            "DIR/config/plugins.yaml:19: LuaPlugin/default/two-sources: spec.phase: unknown value \"LATE\" (one of UNSPECIFIED_PHASE, AUTHN, AUTHZ, STATS)",
            "DIR/config/plugins.yaml:19: LuaPlugin/default/two-sources: spec: only one of inline, file or url may be set",
            "DIR/config/plugins.yaml:24: LuaPlugin/default/no-sum: spec.sha256: sha256 is required with url",
            "DIR/config/plugins.yaml:29: LuaPlugin/default/missing: spec.file: cannot read DIR/config/plugins/nope.lua",
        ])
        // With the right checksum the URL source is read.
        let good = ConfigStore.parse(yaml: """
        apiVersion: extensions.meshd.io/v1alpha1
        kind: LuaPlugin
        metadata: {name: from-url}
        spec: {url: "file://\(dir)/config/plugins/hello.lua", sha256: \(actual)}
        """)
        XCTAssertEqual(Validator.validate(good).map(\.description), [])
        XCTAssertEqual(good.luaPlugins.first?.spec.code, code)
        // Only valid plugins reach a proxy.
        let b = Translator(store: store).bootstrap(for: productpage)
        XCTAssertEqual(b.luaPlugins.map(\.name), ["default.from-file"])
    }

    func testModulesGoToTheProxyAndAreCompiledAtLoad() throws {
        let store = ConfigStore.parse(yaml: """
        apiVersion: extensions.meshd.io/v1alpha1
        kind: LuaPlugin
        metadata: {name: with-modules}
        spec:
          selector: {matchLabels: {app: productpage}}
          inline: |
            local util = require("lib.util")
            function envoy_on_request(h) h:headers():add("x-u", util.tag) end
          modules:
            lib.util: "return {tag = 'u'}"
        ---
        apiVersion: extensions.meshd.io/v1alpha1
        kind: LuaPlugin
        metadata: {name: broken-module}
        spec:
          inline: "x = 1"
          modules: {lib.bad: "return {", ../up: "return 1"}
        """)
        XCTAssertEqual(Validator.validate(store).map(\.description), [
            "<input>:17: LuaPlugin/default/broken-module: spec.modules.../up: a module name is letters, digits, '_', '-' and '.' (as in require(\"lib.util\"))",
            "<input>:17: LuaPlugin/default/broken-module: spec.modules.lib.bad: lua syntax error in lib.bad at line 1: unexpected symbol near <eof>",
        ])
        let good = ConfigStore.parse(yaml: """
        apiVersion: extensions.meshd.io/v1alpha1
        kind: LuaPlugin
        metadata: {name: with-modules}
        spec:
          inline: |
            local util = require("lib.util")
            function envoy_on_request(h) h:headers():add("x-u", util.tag) end
          modules:
            lib.util: "return {tag = 'u'}"
        """)
        let b = Translator(store: good).bootstrap(for: productpage)
        assertSnapshotBuilds(b)
        XCTAssertEqual(b.luaPlugins.first?.modules, ["lib.util": "return {tag = 'u'}"])
    }
}

/// The expected digest, computed independently with the system's sha256sum.
enum SHA256Hex {
    static func of(_ text: String) -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["sha256sum"]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try? p.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        input.fileHandleForWriting.closeFile()
        p.waitUntilExit()
        let out = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return String(out.prefix(64))
    }
}
