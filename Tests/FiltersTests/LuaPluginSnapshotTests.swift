@testable import FilterHost
@testable import MeshAPI
import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest
import Transport
@testable import LuaRuntime
@testable import Filters
@testable import PluginTesting

/// `luaPlugins` in snapshots: chain order, attachment, per-route overrides, versions kept
/// across builds, and config errors.
final class LuaPluginSnapshotTests: XCTestCase {
    let loop = EmbeddedEventLoop()

    private let base = """
    listeners:
      - {name: main, address: 127.0.0.1, port: 1, routeConfig: rc}
      - {name: admin, address: 127.0.0.1, port: 2, routeConfig: other}
    clusters: [{name: a, endpoints: [{address: 127.0.0.1, port: 1}]}]
    routeConfigs:
      - name: rc
        virtualHosts:
          - {name: api, domains: [api.local], routes: [
              {name: api-off, match: {prefix: /off}, route: {cluster: a}, perFilterConfig: {tagger: {disabled: true}}},
              {name: api-code, match: {prefix: /code}, route: {cluster: a},
               perFilterConfig: {meshd.lua: {sourceCode: "function envoy_on_request(h) end -- route"}}},
              {name: api-default, match: {prefix: /}, route: {cluster: a}}]}
          - {name: web, domains: ["*"], routes: [{name: web-default, match: {prefix: /}, route: {cluster: a}}]}
      - name: other
        virtualHosts:
          - {name: internal, domains: ["*"], routes: [{name: internal-default, match: {prefix: /}, route: {cluster: a}}]}
    """

    private func snapshot(_ plugins: String, previous: ProxySnapshot? = nil) throws -> ProxySnapshot {
        try ProxySnapshot.build(try BootstrapLoader.parse(base + "\n" + plugins), version: 1, registry: FilterCatalog.registry,
                                previous: previous)
    }

    private func names(_ s: ProxySnapshot, _ listener: String) -> [String] {
        (s.filterChains[listener] ?? []).map { ($0 as! LuaFilterFactory).plugin.name }
    }

    private func route(_ s: ProxySnapshot, _ authority: String, _ path: String) -> SelectedRoute? {
        s.routeTables["rc"]!.select(authority: authority, path: path, method: "GET", headers: [:])
    }

    private func runs(_ f: HTTPFilterFactory, _ route: SelectedRoute?) -> LuaVM? {
        if case .run(let vm) = (f as! LuaFilterFactory).resolve(route: route, loop: loop) { return vm }
        return nil
    }

    private func code(_ header: String) -> String {
        "'function envoy_on_request(h) h:headers():add(\"\(header)\", \"1\") end'"
    }

    func testChainOrderIsPhaseThenDescendingPriorityThenName() throws {
        let s = try snapshot("""
        luaPlugins:
          - {name: z, inlineCode: \(code("z"))}
          - {name: stats, phase: STATS, inlineCode: \(code("s"))}
          - {name: b-authn, phase: AUTHN, priority: 1, inlineCode: \(code("b"))}
          - {name: a-unspec, phase: UNSPECIFIED, inlineCode: \(code("a"))}
          - {name: authz, phase: AUTHZ, priority: -3, inlineCode: \(code("c"))}
          - {name: c-authn, phase: AUTHN, priority: 10, inlineCode: \(code("d"))}
          - {name: a-authn, phase: AUTHN, priority: 1, inlineCode: \(code("e"))}
          - {name: high, priority: 7, inlineCode: \(code("f"))}
        """)
        XCTAssertEqual(names(s, "main"), ["c-authn", "a-authn", "b-authn", "authz", "stats", "high", "a-unspec", "z"])
    }

    func testAttachmentByListenerVirtualHostAndRoute() throws {
        let s = try snapshot("""
        luaPlugins:
          - {name: everywhere, inlineCode: \(code("e"))}
          - {name: main-only, inlineCode: \(code("m")), attachTo: {listeners: [main]}}
          - {name: api-only, inlineCode: \(code("a")), attachTo: {virtualHosts: [api]}}
          - {name: web-route, inlineCode: \(code("w")), attachTo: {routes: [web-default]}}
          - {name: internal-only, inlineCode: \(code("i")), attachTo: {virtualHosts: [internal]}}
        """)
        // A plugin whose virtual hosts / routes are not in a listener's route config is not in its chain.
        XCTAssertEqual(names(s, "main").sorted(), ["api-only", "everywhere", "main-only", "web-route"])
        XCTAssertEqual(names(s, "admin").sorted(), ["everywhere", "internal-only"])
        let chain = Dictionary(uniqueKeysWithValues: s.filterChains["main"]!.map { (($0 as! LuaFilterFactory).plugin.name, $0) })
        let api = route(s, "api.local", "/x"), web = route(s, "www.local", "/x")
        XCTAssertEqual(api?.name, "api-default")
        XCTAssertNotNil(runs(chain["api-only"]!, api))
        XCTAssertNil(runs(chain["api-only"]!, web))
        XCTAssertNil(runs(chain["api-only"]!, nil), "no route: an attached plugin does not run")
        XCTAssertNotNil(runs(chain["web-route"]!, web))
        XCTAssertNil(runs(chain["web-route"]!, api))
        XCTAssertNotNil(runs(chain["everywhere"]!, nil))
        // The route config has a meshd.lua sourceCode override, so even this plugin looks at the route.
        XCTAssertTrue((chain["everywhere"] as! LuaFilterFactory).needsRoute)
        let plain = try ProxySnapshot.build(try BootstrapLoader.parse("""
        listeners: [{name: l, address: 127.0.0.1, port: 1, routeConfig: rc}]
        clusters: [{name: a, endpoints: [{address: 127.0.0.1, port: 1}]}]
        routeConfigs: [{name: rc, virtualHosts: [{name: v, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: a}}]}]}]
        luaPlugins: [{name: p, inlineCode: \(code("p"))}]
        """), version: 1, registry: FilterCatalog.registry)
        XCTAssertFalse((plain.filterChains["l"]![0] as! LuaFilterFactory).needsRoute)
    }

    func testPerRouteDisabledAndSourceCode() throws {
        let s = try snapshot("""
        luaPlugins:
          - {name: tagger, inlineCode: \(code("t"))}
          - {name: other, inlineCode: \(code("o"))}
        """)
        let chain = s.filterChains["main"]!
        let tagger = chain[1], other = chain[0]
        XCTAssertEqual((tagger as! LuaFilterFactory).plugin.name, "tagger")
        XCTAssertNil(runs(tagger, route(s, "api.local", "/off")))
        XCTAssertNotNil(runs(other, route(s, "api.local", "/off")))
        let replaced = try XCTUnwrap(runs(tagger, route(s, "api.local", "/code")))
        XCTAssertTrue(replaced.script.source.hasSuffix("-- route"))
        XCTAssertEqual(replaced.plugin.name, "tagger")
        let own = try XCTUnwrap(runs(tagger, route(s, "api.local", "/")))
        XCTAssertTrue(own.script.source.contains("\"t\""))
        // The same route code for two plugins: one version each, the route code compiled once per plugin.
        let otherReplaced = try XCTUnwrap(runs(other, route(s, "api.local", "/code")))
        XCTAssertFalse(otherReplaced === replaced)
        XCTAssertEqual((s.extensionState[LuaFilterFactory.name] as? [String: LuaPluginVersion])?.count, 4)
    }

    func testUnchangedPluginKeepsItsVersionAcrossBuilds() throws {
        let first = try snapshot("""
        luaPlugins:
          - {name: keep, inlineCode: \(code("k"))}
          - {name: change, inlineCode: \(code("c1"))}
        """)
        let second = try snapshot("""
        luaPlugins:
          - {name: keep, inlineCode: \(code("k")), priority: 5}
          - {name: change, inlineCode: \(code("c2"))}
        """, previous: first)
        func version(_ s: ProxySnapshot, _ name: String) -> LuaPluginVersion {
            s.filterChains["main"]!.map { $0 as! LuaFilterFactory }.first { $0.plugin.name == name }!.version
        }
        XCTAssertTrue(version(first, "keep") === version(second, "keep"))
        XCTAssertFalse(version(first, "change") === version(second, "change"))
        XCTAssertTrue(version(first, "keep").vm(for: loop) === version(second, "keep").vm(for: loop))
    }

    func testOldVersionAndItsVMsGoWithTheLastSnapshotAndStream() throws {
        weak var oldVM: LuaVM?
        weak var oldVersion: LuaPluginVersion?
        var stream: ChainHarness?
        var next: ProxySnapshot?
        do {
            let first = try snapshot("luaPlugins: [{name: p, inlineCode: \(code("1"))}]")
            let factory = first.filterChains["main"]![0] as! LuaFilterFactory
            oldVM = factory.vm(for: loop)
            oldVersion = factory.version
            stream = try ChainHarness(eventLoop: loop, factories: [factory])
            next = try snapshot("luaPlugins: [{name: p, inlineCode: \(code("2"))}]", previous: first)
        }
        XCTAssertNotNil(next)
        XCTAssertNotNil(oldVM, "a stream that started on the old version keeps it")
        stream?.sendRequest()
        XCTAssertEqual(stream?.upstream("1"), "1")
        stream?.complete()
        stream = nil
        XCTAssertNil(oldVersion)
        XCTAssertNil(oldVM)
    }

    func testConfigErrorsNameTheField() throws {
        func error(_ plugins: String) -> String {
            do {
                _ = try snapshot(plugins)
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        let syntax = error("""
        luaPlugins:
          - {name: fine, inlineCode: \(code("f"))}
          - {name: broken, inlineCode: "-- one\\nfunction envoy_on_request(h)\\n  local = 1\\nend"}
        """)
        XCTAssertTrue(syntax.hasPrefix("luaPlugins[1].inlineCode: lua syntax error in broken at line 3"), syntax)
        XCTAssertTrue(error("""
        luaPlugins: [{name: x, inlineCode: \(code("a"))}, {name: x, inlineCode: \(code("b"))}]
        """).hasPrefix("luaPlugins[1].name: duplicate plugin 'x'"))
        XCTAssertTrue(error("luaPlugins: [{name: x, phase: LATE, inlineCode: \(code("a"))}]").hasPrefix("luaPlugins[0].phase"))
        XCTAssertTrue(error("luaPlugins: [{name: x, failStrategy: MAYBE, inlineCode: \(code("a"))}]")
            .hasPrefix("luaPlugins[0].failStrategy"))
        XCTAssertEqual(error("luaPlugins: [{name: x, inlineCode: \(code("a")), attachTo: {listeners: [main, nope]}}]"),
                       "luaPlugins[0].attachTo.listeners[1]: unknown listener 'nope'")
        XCTAssertEqual(error("luaPlugins: [{name: x, inlineCode: \(code("a")), attachTo: {virtualHosts: [nope]}}]"),
                       "luaPlugins[0].attachTo.virtualHosts[0]: unknown virtual host 'nope'")
        XCTAssertTrue(error("luaPlugins: [{name: x, inlineCode: \(code("a")), limits: {instructions: 0}}]")
            .hasPrefix("luaPlugins[0].limits.instructions"))
    }

    func testPerRouteConfigErrors() throws {
        func error(_ perFilter: String) -> String {
            let yaml = """
            listeners: [{name: main, address: 127.0.0.1, port: 1, routeConfig: rc}]
            clusters: [{name: a, endpoints: [{address: 127.0.0.1, port: 1}]}]
            routeConfigs:
              - name: rc
                virtualHosts:
                  - {name: all, domains: ["*"], routes: [
                      {name: r, match: {prefix: /}, route: {cluster: a}, perFilterConfig: \(perFilter)}]}
            luaPlugins: [{name: p, inlineCode: \(code("p"))}]
            """
            do {
                _ = try buildSnapshot(yaml)
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        let at = "routeConfigs[0].virtualHosts[0].routes[0].perFilterConfig"
        XCTAssertEqual(error("{p: {disabled: yes-please}}"), "\(at).p.disabled: must be true or false")
        XCTAssertTrue(error("{meshd.lua: {sourceCode: \"x = = 1\"}}").hasPrefix("\(at).meshd.lua.sourceCode: lua syntax error"))
        XCTAssertEqual(error("{p: {disabled: true, sourceCode: \"x = 1\"}}"),
                       "\(at).p: disabled and sourceCode exclude each other")
        XCTAssertTrue(error("{p: {source_code: \"x = 1\"}}").hasPrefix("\(at).p.source_code: unknown field"))
        XCTAssertEqual(error("{other.filter: {anything: 1}}"), "accepted")
    }

    func testBypassedStreamRunsNoLua() throws {
        let s = try snapshot("luaPlugins: [{name: api-only, inlineCode: \(code("x-ran")), attachTo: {virtualHosts: [api]}}]")
        let factory = s.filterChains["main"]![0] as! LuaFilterFactory
        let web = try ChainHarness(eventLoop: loop, factories: [factory])
        web.route = route(s, "www.local", "/")
        web.sendRequest()
        XCTAssertNil(web.upstream("x-ran"))
        XCTAssertEqual(factory.vm(for: loop)?.executions, 0)
        let api = try ChainHarness(eventLoop: loop, factories: [factory])
        api.route = route(s, "api.local", "/")
        api.sendRequest()
        XCTAssertEqual(api.upstream("x-ran"), "1")
        XCTAssertEqual(factory.vm(for: loop)?.executions, 1)
    }
}
