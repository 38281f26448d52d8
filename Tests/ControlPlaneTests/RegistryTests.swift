import ControlPlane
import XCTest
import Transport
import LuaRuntime

final class RegistryTests: XCTestCase {
    private var registry: Registry { Registry(store: ConfigStore.parse(yaml: bookinfoRegistryYAML)) }

    func testShortAndFullHostNamesNameTheSameService() throws {
        let r = registry
        XCTAssertEqual(r.services.map(\.host), [
            "details.default.svc.cluster.local", "productpage.default.svc.cluster.local",
            "ratings.default.svc.cluster.local", "reviews.default.svc.cluster.local",
        ])
        XCTAssertEqual(r.service(host: "reviews")?.host, "reviews.default.svc.cluster.local")
        XCTAssertEqual(r.service(host: "reviews.default.svc.cluster.local")?.source, "ServiceEntry/default/reviews")
        XCTAssertEqual(r.service(host: "productpage", namespace: "default")?.host, "productpage.default.svc.cluster.local")
        XCTAssertNil(r.service(host: "reviews", namespace: "other"))
        XCTAssertEqual(HostNames.aliases(of: "reviews.default.svc.cluster.local", clientNamespace: "default"),
                       ["reviews", "reviews.default", "reviews.default.svc", "reviews.default.svc.cluster.local"])
        XCTAssertEqual(HostNames.aliases(of: "reviews.default.svc.cluster.local", clientNamespace: "shop"),
                       ["reviews.default", "reviews.default.svc", "reviews.default.svc.cluster.local"])
    }

    func testEndpointsFromWorkloadSelectorInlineEndpointsAndSubsets() throws {
        let r = registry
        let reviews = try XCTUnwrap(r.service(host: "reviews"))
        let port = try XCTUnwrap(reviews.port(9080))
        XCTAssertEqual(r.endpoints(of: reviews, port: port).map { "\($0.address):\($0.port)" },
                       ["10.0.0.11:9080", "10.0.0.12:9080", "10.0.0.13:9080"])
        XCTAssertEqual(r.endpoints(of: reviews, port: port, subset: ["version": "v2"]).map(\.address), ["10.0.0.12"])
        // A WorkloadEntry's named port wins over the service port.
        let pp = try XCTUnwrap(r.service(host: "productpage"))
        XCTAssertEqual(r.endpoints(of: pp, port: pp.ports[0]).map { "\($0.address):\($0.port)" }, ["10.0.0.1:9081"])
        let details = try XCTUnwrap(r.service(host: "details"))
        XCTAssertEqual(r.endpoints(of: details, port: details.ports[0]).map { "\($0.address):\($0.port)" }, ["10.0.0.21:9083"])
    }

    func testRegisteredWorkloadsBehaveLikeWorkloadEntries() throws {
        var r = registry
        let ratings = try XCTUnwrap(r.service(host: "ratings"))
        XCTAssertEqual(r.endpoints(of: ratings, port: ratings.ports[0]).map(\.address), ["10.0.0.31"])
        r.register(workload: DynamicWorkload(name: "ratings-v2-abc", address: "127.0.0.1", ports: ["http": 19080],
                                             labels: ["app": "ratings", "version": "v2"], serviceAccount: "ratings"))
        r.register(workload: DynamicWorkload(name: "elsewhere", namespace: "other", address: "127.0.0.9",
                                             labels: ["app": "ratings"]))
        XCTAssertEqual(r.endpoints(of: ratings, port: ratings.ports[0]).map { "\($0.address):\($0.port)" },
                       ["10.0.0.31:9082", "127.0.0.1:19080"])
        XCTAssertEqual(r.endpoints(of: ratings, port: ratings.ports[0], subset: ["version": "v2"]).map(\.address), ["127.0.0.1"])
        XCTAssertEqual(r.workloads.filter { $0.origin == .dynamic }.map(\.id), ["default/ratings-v2-abc", "other/elsewhere"])
        // Registering the same id again replaces it; unregistering removes it.
        r.register(workload: DynamicWorkload(name: "ratings-v2-abc", address: "127.0.0.2", ports: ["http": 19080],
                                             labels: ["app": "ratings", "version": "v2"]))
        XCTAssertEqual(r.endpoints(of: ratings, port: ratings.ports[0], subset: ["version": "v2"]).map(\.address), ["127.0.0.2"])
        XCTAssertTrue(r.unregister(id: "default/ratings-v2-abc"))
        XCTAssertFalse(r.unregister(id: "default/ratings-v2-abc"))
        XCTAssertEqual(r.endpoints(of: ratings, port: ratings.ports[0]).map(\.address), ["10.0.0.31"])
        // Registered workloads survive a store update.
        r.register(workload: DynamicWorkload(name: "late", address: "127.0.0.3", labels: ["app": "ratings"]))
        r.update(store: ConfigStore.parse(yaml: bookinfoRegistryYAML))
        XCTAssertEqual(r.endpoints(of: ratings, port: ratings.ports[0]).map(\.address), ["10.0.0.31", "127.0.0.3"])
    }

    func testDNSResolutionUsesTheHost() throws {
        let store = ConfigStore.load(files: [try sample("egress-rule-google-apis.yaml")])
        let r = Registry(store: store)
        let g = try XCTUnwrap(r.service(host: "www.googleapis.com"))
        XCTAssertEqual(g.ports.map(\.number), [80, 443])
        XCTAssertEqual(r.endpoints(of: g, port: g.ports[1]).map { "\($0.address):\($0.port)" }, ["www.googleapis.com:443"])
    }
}
