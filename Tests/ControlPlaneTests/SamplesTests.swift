import ControlPlane
import Foundation
import XCTest
import Transport
import LuaRuntime

final class SamplesTests: XCTestCase {
    func testEveryIstioSampleLoadsAndValidates() throws {
        let dir = try istioSamplesDirectory()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
        XCTAssertGreaterThan(files.count, 20)
        for f in files {
            let store = ConfigStore.load(files: [dir + "/" + f])
            XCTAssertFalse(store.resources.isEmpty, f)
            XCTAssertEqual(Validator.validate(store).map(\.description), [], f)
        }
    }

    func testTheSamplesDirectoryLoadsRecursivelyInSortedOrder() throws {
        let dir = try istioSamplesDirectory()
        let store = try ConfigStore.load(directory: dir)
        XCTAssertEqual(store.loadErrors.map(\.description), [])
        XCTAssertEqual(Validator.validate(store).map(\.description), [])
        let files = store.resources.map(\.location.file)
        XCTAssertEqual(files, files.sorted())
        // virtual-service-reviews-v3.yaml sorts last: its reviews VirtualService is the one in effect.
        let reviews = store.virtualServices.first { $0.name == "reviews" }
        XCTAssertEqual(reviews?.location.file, dir + "/virtual-service-reviews-v3.yaml")
        XCTAssertEqual(reviews?.spec.http.first?.route.first?.destination?.subset, "v3")
    }

    func testDocumentsKeepTheirStartLine() throws {
        let store = ConfigStore.load(files: [try sample("destination-rule-all.yaml"), try sample("tcp-echo-all-v1.yaml")])
        let lines = store.resources.map { "\($0.kind.rawValue)/\($0.meta.name)@\($0.location.line)" }
        XCTAssertEqual(lines, [
            "DestinationRule/productpage@1", "DestinationRule/reviews@12", "DestinationRule/ratings@29",
            "DestinationRule/details@49",
            // The license header comes first; the Gateway's document starts at line 15.
            "Gateway/tcp-echo-gateway@15", "DestinationRule/tcp-echo-destination@30", "VirtualService/tcp-echo@44",
        ])
        XCTAssertEqual(store.resources.first?.meta.namespace, "default")
    }

    func testIstioSampleFieldsAreTyped() throws {
        let store = ConfigStore.load(files: [try sample("virtual-service-ratings-test-delay.yaml"),
                                             try sample("egress-rule-google-apis.yaml")])
        let ratings = try XCTUnwrap(store.virtualServices.first { $0.name == "ratings" })
        XCTAssertEqual(ratings.spec.http[0].fault?.delay?.fixedDelayMs, 7000)
        XCTAssertEqual(ratings.spec.http[0].fault?.delay?.percentage?.value, 100)
        XCTAssertEqual(ratings.spec.http[0].match[0].headers["end-user"]?.exact, "jason")
        let dr = try XCTUnwrap(store.destinationRules.first)
        XCTAssertEqual(dr.spec.trafficPolicy?.settings(forPort: 443).tls?.mode, "SIMPLE")
        XCTAssertEqual(dr.spec.trafficPolicy?.settings(forPort: 443).loadBalancer?.simple, "ROUND_ROBIN")
        XCTAssertNil(dr.spec.trafficPolicy?.settings(forPort: 80).tls)
        XCTAssertEqual(store.serviceEntries.first?.spec.resolution, "DNS")
    }
}
