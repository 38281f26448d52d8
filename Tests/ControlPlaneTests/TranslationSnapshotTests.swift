@testable import ControlPlane
import Foundation
import MeshAPI
import NIOConcurrencyHelpers
import NIOCore
import XCTest
import Transport
import LuaRuntime

/// `TranslationSnapshot` gives every proxy what `Translator` gives it, while sharing the work
/// (and the encoded resources) between proxies that only differ in what the shared part
/// cannot see; `ProxyResources`/`SharedResources` encode a push from shared bytes.
final class TranslationSnapshotTests: XCTestCase {
    /// Bookinfo plus everything that looks at a proxy's labels: a DestinationRule and a Sidecar
    /// with workloadSelectors, a VirtualService match on sourceLabels, a LuaPlugin selector.
    private let selectorsYAML = bookinfoRegistryYAML + """

    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: reviews}
    spec:
      host: reviews
      subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: ratings-for-canaries}
    spec:
      host: ratings
      workloadSelector: {matchLabels: {track: canary}}
      trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
      subsets: [{name: v1, labels: {version: v1}}]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews}
    spec:
      hosts: [reviews]
      http:
      - name: from-testers
        match: [{sourceLabels: {team: testers}}]
        route: [{destination: {host: reviews, subset: v2}}]
      - name: split
        route:
        - {destination: {host: reviews, subset: v1}, weight: 90}
        - {destination: {host: reviews, subset: v2}, weight: 10}
    ---
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: isolated}
    spec:
      workloadSelector: {labels: {isolated: "yes"}}
      egress: [{hosts: ["./ratings.default.svc.cluster.local"]}]
    ---
    apiVersion: extensions.meshd.io/v1alpha1
    kind: LuaPlugin
    metadata: {name: tagger}
    spec:
      selector: {matchLabels: {app: productpage}}
      match: [{mode: SERVER}]
      inline: "function envoy_on_request(h) h:headers():add('x-tag', '1') end"
    ---
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata: {name: ingress}
    spec:
      selector: {istio: ingressgateway}
      servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: front}
    spec:
      hosts: ["*"]
      gateways: [ingress]
      http: [{route: [{destination: {host: productpage}}]}]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: broken}
    spec:
      hosts: [details]
      http: [{route: [{destination: {host: details}, weight: 0}, {destination: {host: details}, weight: 0}]}]
    """

    private func sidecar(_ name: String, _ labels: [String: String], namespace: String = "default", port: Int = 20000,
                         app: Bool = true) -> ProxyIdentity {
        .sidecar(name: name, namespace: namespace, labels: labels, outboundPort: port, inboundPort: port + 1,
                 appPort: app ? port + 2 : nil)
    }

    private var proxies: [ProxyIdentity] {
        [
            sidecar("pp-1", ["app": "productpage", "version": "v1"], port: 20000),
            sidecar("pp-2", ["app": "productpage", "version": "v2", "pod": "x"], port: 20010),
            sidecar("rv-1", ["app": "reviews", "version": "v1"], port: 20020),
            sidecar("rv-1-noapp", ["app": "reviews", "version": "v1"], port: 20030, app: false),
            sidecar("canary", ["app": "reviews", "track": "canary"], port: 20040),
            sidecar("tester", ["app": "ratings", "team": "testers"], port: 20050),
            sidecar("isolated", ["app": "details", "isolated": "yes"], port: 20060),
            sidecar("elsewhere", ["app": "productpage"], namespace: "shop", port: 20070),
            .gateway(name: "ingress", namespace: "default", labels: ["istio": "ingressgateway"], ports: [8080: 18080]),
            .gateway(name: "other", labels: ["istio": "egressgateway"]),
        ]
    }

    private func store() -> ConfigStore { ConfigStore.parse(yaml: selectorsYAML) }

    func testEverySnapshotTranslationEqualsTheTranslators() throws {
        let store = store()
        var registry = Registry(store: store)
        registry.register(workload: DynamicWorkload(name: "rv-9", address: "127.0.0.9", labels: ["app": "reviews", "version": "v2"]))
        let translator = Translator(store: store, registry: registry)
        let snapshot = TranslationSnapshot(store: store, registry: registry)
        for proxy in proxies {
            let expected = translator.translate(for: proxy)
            XCTAssertEqual(snapshot.translate(for: proxy), expected, proxy.name)
            // Asking again (from the memo) gives the same.
            XCTAssertEqual(snapshot.translate(for: proxy), expected, proxy.name)
            // The resources are the translation's, encoded as ResourceCodec does.
            let resources = snapshot.resources(for: proxy)
            XCTAssertEqual(resources.all, ResourceCodec.resources(of: expected.bootstrap), proxy.name)
            XCTAssertEqual(try ResourceCodec.bootstrap(from: resources.all), expected.bootstrap, proxy.name)
        }
        // The invalid VirtualService is reported as the Translator reports it.
        XCTAssertTrue(snapshot.translate(for: proxies[0]).warnings.contains { $0.hasPrefix("VirtualService/default/broken") })
    }

    func testOnlyLabelsThatSelectorsUseSeparateProxies() throws {
        let snapshot = TranslationSnapshot(store: store(), registry: Registry(store: store()))
        XCTAssertEqual(snapshot.selectorLabelKeys, ["track", "team", "isolated", "app", "istio", "topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone", "topology.istio.io/network"], "and the locality and network labels")
        let p = proxies
        func shared(_ proxy: ProxyIdentity) -> SharedResources { snapshot.resources(for: proxy).shared }
        // Name, ports, and labels no selector reads (version, pod) do not matter...
        XCTAssertTrue(shared(p[0]) === shared(p[1]))
        XCTAssertTrue(shared(p[2]) === shared(sidecar("rv-2", ["app": "reviews", "version": "v2"], port: 30000)))
        XCTAssertNotEqual(snapshot.resources(for: p[0]).version, snapshot.resources(for: p[1]).version)
        // ... labels a selector reads, the namespace and having an app do.
        XCTAssertFalse(shared(p[2]) === shared(p[3]))    // no app port: no inbound listener for SERVER plugins
        XCTAssertFalse(shared(p[2]) === shared(p[4]))    // track=canary: another DestinationRule
        XCTAssertFalse(shared(p[0]) === shared(p[7]))    // another namespace
        XCTAssertFalse(shared(p[4]).entries == shared(p[2]).entries)
        // A proxy's own part holds its listeners and inbound side, nothing else.
        XCTAssertEqual(snapshot.resources(for: p[0]).own.keys.sorted(),
                       ["cluster/inbound|20002||", "listener/inbound", "listener/outbound", "route/inbound"])
        XCTAssertEqual(snapshot.resources(for: p[3]).own.keys.sorted(), ["listener/outbound"])
        XCTAssertEqual(snapshot.resources(for: p[8]).own, [:])
    }

    func testANewSnapshotReusesTheEncodingOfEqualResources() throws {
        let store = store()
        let a = ResourceCodec.resources(of: Translator(store: store).bootstrap(for: proxies[0]))
        // Stand-ins for the old encodings: reused ones show up as they are.
        var old = a
        for key in old.keys { old[key]!.body = Array("old \(key)".utf8) }
        let old1 = Translator(store: store).bootstrap(for: proxies[0])
        let changed = ConfigStore.parse(yaml: selectorsYAML.replacingOccurrences(of: "weight: 90", with: "weight: 50")
            .replacingOccurrences(of: "weight: 10}", with: "weight: 50}"))
        let new = Translator(store: changed).bootstrap(for: proxies[0])
        let out = TranslationSnapshot.encode(new, reusing: old1, old)
        XCTAssertEqual(out.keys.sorted(), a.keys.sorted())
        for (key, entry) in out {
            if key == "route/outbound" {
                XCTAssertEqual(entry, ResourceCodec.resources(of: new)[key], key)
                XCTAssertNotEqual(entry.version, a[key]!.version)
            } else {
                XCTAssertEqual(entry, old[key], key)
            }
        }
        // Through snapshots: the next one's unchanged clusters are the previous one's entries.
        let snapshots = TranslationSnapshots()
        let first = snapshots.next(store: store, registry: Registry(store: store)).resources(for: proxies[0])
        let second = snapshots.next(store: changed, registry: Registry(store: changed)).resources(for: proxies[0])
        XCTAssertEqual(first.shared.entries.filter { $0.key != "route/outbound" },
                       second.shared.entries.filter { $0.key != "route/outbound" })
        XCTAssertNotEqual(first.shared.entries["route/outbound"], second.shared.entries["route/outbound"])
        XCTAssertNotEqual(first.version, second.version)
    }

    func testSharedEncodingsConcatenateIntoOneResponse() throws {
        func entry(_ name: String, _ body: String) -> ResourceEntry {
            ResourceEntry(name: name, version: ResourceCodec.fnv1a(Array(body.utf8)), body: Array(body.utf8))
        }
        let before = SharedResources(["cluster/a": entry("cluster/a", "1"), "cluster/b": entry("cluster/b", "1"),
                                      "cluster/gone": entry("cluster/gone", "1")])
        let after = SharedResources(["cluster/a": entry("cluster/a", "1"), "cluster/b": entry("cluster/b", "2"),
                                     "cluster/new": entry("cluster/new", "1")])
        var envelope = Meshd_Discovery_V1_DiscoveryResponse()
        envelope.versionInfo = "v2"
        envelope.nonce = "7"
        envelope.incremental = true
        var own = Meshd_Discovery_V1_Resource()
        own.name = "listener/outbound"
        envelope.resources = [own]
        envelope.removedResources = ["route/inbound"]
        var bytes: [UInt8] = try envelope.serializedBytes()
        var change = after.changeEncoding(since: before)
        bytes += change.readBytes(length: change.readableBytes)!
        let parsed = try Meshd_Discovery_V1_DiscoveryResponse(serializedBytes: bytes)
        XCTAssertEqual(parsed.versionInfo, "v2")
        XCTAssertEqual(parsed.nonce, "7")
        XCTAssertTrue(parsed.incremental)
        XCTAssertEqual(parsed.resources.map(\.name), ["listener/outbound", "cluster/b", "cluster/new"])
        XCTAssertEqual(parsed.resources[1].body, Data("2".utf8))
        XCTAssertEqual(parsed.removedResources, ["route/inbound", "cluster/gone"])
        // The same bytes each time (made once); nothing since itself; everything for a full push.
        XCTAssertEqual(after.changeEncoding(since: before), after.changeEncoding(since: before))
        XCTAssertEqual(after.changeEncoding(since: after).readableBytes, 0)
        let full = try Meshd_Discovery_V1_DiscoveryResponse(serializedBytes: Array(buffer: after.fullEncoding()))
        XCTAssertEqual(full.resources.map(\.name), ["cluster/a", "cluster/b", "cluster/new"])
        XCTAssertEqual(full.removedResources, [])
    }

    func testProxyResourcesVersionFollowsContent() {
        let shared = SharedResources(["cluster/a": ResourceEntry(name: "cluster/a", version: "1", body: [])])
        let own = ["listener/outbound": ResourceEntry(name: "listener/outbound", version: "9", body: [])]
        XCTAssertEqual(ProxyResources(shared: shared, own: own).version,
                       ProxyResources(shared: SharedResources(shared.entries), own: own).version)
        XCTAssertNotEqual(ProxyResources(shared: shared, own: own).version, ProxyResources(shared: shared, own: [:]).version)
    }

    func testRegistryLabelIndexSelectsAsAFilterWould() {
        var registry = Registry(store: ConfigStore.parse(yaml: bookinfoRegistryYAML))
        for i in 0..<30 {
            registry.register(workload: DynamicWorkload(name: "w\(i)", namespace: i % 3 == 0 ? "other" : "default",
                                                        address: "127.0.0.\(i)",
                                                        labels: ["app": "svc-\(i % 4)", "version": "v\(i % 2)"]))
        }
        for selector in [[:], ["app": "svc-1"], ["app": "svc-2", "version": "v0"], ["version": "v1"], ["app": "nope"],
                         ["app": "reviews"]] {
            for ns in ["default", "other", "none"] {
                let expected = registry.workloads.filter { w in w.namespace == ns && selector.allSatisfy { w.labels[$0.key] == $0.value } }
                XCTAssertEqual(registry.workloads(selectedBy: selector, namespace: ns), expected, "\(selector) in \(ns)")
            }
        }
        XCTAssertTrue(registry.unregister(id: "default/w1"))
        XCTAssertFalse(registry.workloads(selectedBy: ["app": "svc-1"], namespace: "default").contains { $0.name == "w1" })
    }
}

final class DirectoryWatcherTests: XCTestCase {
    func testFingerprintSeesYAMLAndLuaFilesOnlyAndEveryChange() throws {
        let dir = try temporaryDirectory(self)
        try write("a: 1\n", to: dir + "/a.yaml")
        try write("b: 1\n", to: dir + "/nested/deeper/b.yml")
        try write("-- lua\n", to: dir + "/plugins/p.lua")
        try write("ignored\n", to: dir + "/notes.txt")
        let first = DirectoryWatcher.fingerprint(dir)
        XCTAssertEqual(first.split(separator: "|").map { String($0.split(separator: ":")[0]) },
                       ["a.yaml", "nested/deeper/b.yml", "plugins/p.lua"])
        XCTAssertEqual(DirectoryWatcher.fingerprint(dir), first)
        try write("ignored too\n", to: dir + "/notes.txt")
        XCTAssertEqual(DirectoryWatcher.fingerprint(dir), first)
        try write("b: 22\n", to: dir + "/nested/deeper/b.yml")          // size
        let second = DirectoryWatcher.fingerprint(dir)
        XCTAssertNotEqual(second, first)
        try write("b: 33\n", to: dir + "/nested/deeper/b.yml")          // same size, new mtime
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 60)],
                                              ofItemAtPath: dir + "/nested/deeper/b.yml")
        XCTAssertNotEqual(DirectoryWatcher.fingerprint(dir), second)
        XCTAssertEqual(DirectoryWatcher.fingerprint(dir + "/missing"), "")
    }

    func testFingerprintSeesARenameOverThatKeepsSizeAndMtime() throws {
        let dir = try temporaryDirectory(self)
        try write("a: 1\n", to: dir + "/a.yaml")
        let mtime = try FileManager.default.attributesOfItem(atPath: dir + "/a.yaml")[.modificationDate] as! Date
        let before = DirectoryWatcher.fingerprint(dir)
        try write("a: 2\n", to: dir + "/a.tmp")
        try FileManager.default.setAttributes([.modificationDate: mtime], ofItemAtPath: dir + "/a.tmp")
        XCTAssertEqual(rename(dir + "/a.tmp", dir + "/a.yaml"), 0)
        XCTAssertNotEqual(DirectoryWatcher.fingerprint(dir), before)
    }

    func testAFailingChangeIsRefusedOnlyOnceTheDirectoryStayedQuiet() throws {
        let dir = try temporaryDirectory(self)
        try write("a: 1\n", to: dir + "/a.yaml")
        let calls = NIOLockedValueBox<[(mayRefuse: Bool, text: String)]>([])
        let refused = expectation(description: "refused")
        let watcher = DirectoryWatcher(directory: dir, interval: 0.02, debounce: 0.05, refusalDelay: 0.5) { mayRefuse in
            let text = (try? String(contentsOfFile: dir + "/a.yaml", encoding: .utf8)) ?? ""
            calls.withLockedValue { $0.append((mayRefuse, text)) }
            if text.hasPrefix("good") { return true }
            if mayRefuse { refused.fulfill() }
            return mayRefuse
        }
        watcher.start()
        defer { watcher.stop() }
        // A half file, completed 0.2 s later (before the refusal delay): loaded, never refused.
        try write("half", to: dir + "/a.yaml")
        Thread.sleep(forTimeInterval: 0.2)
        try write("good: 1\n", to: dir + "/a.yaml")
        let loaded = Date()
        while !calls.withLockedValue({ $0.contains { $0.text.hasPrefix("good") } }), Date().timeIntervalSince(loaded) < 5 {
            Thread.sleep(forTimeInterval: 0.02)
        }
        XCTAssertFalse(calls.withLockedValue { $0 }.contains { $0.mayRefuse }, "\(calls.withLockedValue { $0 })")
        XCTAssertTrue(calls.withLockedValue { $0.last?.text.hasPrefix("good") ?? false })
        // A bad file that stays: tried, then refused once quiet for the delay.
        let started = Date()
        try write("bad", to: dir + "/a.yaml")
        wait(for: [refused], timeout: 5)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.5)
    }

    func testAChangeFiresOnceTheDirectoryIsQuiet() throws {
        let dir = try temporaryDirectory(self)
        try write("a: 1\n", to: dir + "/a.yaml")
        let fired = expectation(description: "change")
        let count = NIOLockedValueBox(0)
        let watcher = DirectoryWatcher(directory: dir, interval: 0.02, debounce: 0.1) { _ in
            if count.withLockedValue({ $0 += 1; return $0 }) == 1 { fired.fulfill() }
            return true
        }
        watcher.start()
        defer { watcher.stop() }
        // Several writes in a burst: one reload, after the last.
        for i in 0..<5 {
            try write("a: \(i + 2)\n", to: dir + "/a.yaml")
            Thread.sleep(forTimeInterval: 0.03)
        }
        wait(for: [fired], timeout: 5)
        Thread.sleep(forTimeInterval: 0.3)
        XCTAssertEqual(count.withLockedValue { $0 }, 1)
    }
}

final class ParseCacheTests: XCTestCase {
    func testUnchangedFilesAreReusedAndPluginFilesAlwaysReadAgain() throws {
        let dir = try temporaryDirectory(self)
        try write(bookinfoRegistryYAML, to: dir + "/registry.yaml")
        try write("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              http: [{route: [{destination: {host: reviews}}]}]
            """, to: dir + "/routes/reviews.yaml")
        try write("""
            apiVersion: extensions.meshd.io/v1alpha1
            kind: LuaPlugin
            metadata: {name: tagger}
            spec:
              selector: {matchLabels: {app: productpage}}
              file: tagger.lua
            """, to: dir + "/plugins/tagger.yaml")
        try write("function envoy_on_request(h) end -- v1\n", to: dir + "/plugins/tagger.lua")
        let cache = ConfigStore.ParseCache()
        let first = try ConfigStore.load(directory: dir, cache: cache)
        XCTAssertEqual(first, try ConfigStore.load(directory: dir))
        XCTAssertEqual(cache.count, 2)   // the plugin's file is not kept
        XCTAssertEqual(try ConfigStore.load(directory: dir, cache: cache), first)

        // A changed file is parsed again; the plugin's source is read again though its YAML did not change.
        try write("function envoy_on_request(h) end -- v2\n", to: dir + "/plugins/tagger.lua")
        try write("""
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              http: [{route: [{destination: {host: ratings}}]}]
            """, to: dir + "/routes/reviews.yaml")
        let second = try ConfigStore.load(directory: dir, cache: cache)
        XCTAssertEqual(second, try ConfigStore.load(directory: dir))
        XCTAssertNotEqual(second, first)
        XCTAssertEqual(second.luaPlugins.first?.spec.code, "function envoy_on_request(h) end -- v2\n")
        XCTAssertEqual(second.virtualServices.first?.spec.http.first?.route.first?.destination?.host, "ratings")

        // A removed file leaves the cache.
        try FileManager.default.removeItem(atPath: dir + "/routes/reviews.yaml")
        XCTAssertEqual(try ConfigStore.load(directory: dir, cache: cache).virtualServices.count, 0)
        XCTAssertEqual(cache.count, 1)
    }
}
