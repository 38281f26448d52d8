import ControlPlane
import XCTest

/// "Did you mean": near misses get the nearest known name, far ones nothing.
final class SpellingTests: XCTestCase {
    func testSwapOfNeighboursIsOneEdit() {
        XCTAssertEqual(Spelling.distance("wieght", "weight"), 1)
        XCTAssertEqual(Spelling.distance("proxy-stauts", "proxy-status"), 1)
        XCTAssertEqual(Spelling.distance("rout", "route"), 1)
        XCTAssertEqual(Spelling.distance("Route", "route"), 0)
        XCTAssertEqual(Spelling.distance("", "abc"), 3)
        XCTAssertEqual(Spelling.distance("kitten", "sitting"), 3)
    }

    func testSuggestsTheNearestKnownName() {
        let verbs = ["proxy-status", "proxy-config", "validate", "analyze", "version"]
        XCTAssertEqual(Spelling.suggestion(for: "proxy-stauts", among: verbs), "proxy-status")
        XCTAssertEqual(Spelling.suggestion(for: "proxy-confg", among: verbs), "proxy-config")
        XCTAssertEqual(Spelling.suggestion(for: "valdate", among: verbs), "validate")
        XCTAssertEqual(Spelling.suggestion(for: "verison", among: verbs), "version")
        XCTAssertEqual(Spelling.suggestion(for: "wieght", among: ["destination", "weight", "headers"]), "weight")
        XCTAssertEqual(Spelling.suggestion(for: "Weight", among: ["weight"]), "weight")
    }

    func testFarOrExactNamesGetNoSuggestion() {
        XCTAssertNil(Spelling.suggestion(for: "deploy", among: ["proxy-status", "validate"]))
        XCTAssertNil(Spelling.suggestion(for: "abc", among: ["xyz"]))
        // A short word allows one edit: "hots" is two from "ports".
        XCTAssertNil(Spelling.suggestion(for: "hots", among: ["ports"]))
        XCTAssertNil(Spelling.suggestion(for: "weight", among: ["weight"]))
        XCTAssertNil(Spelling.suggestion(for: "x", among: []))
    }
}

/// The decoder's unknown-field error names the field meant, from the fields that object knows.
final class MisspelledFieldTests: XCTestCase {
    func testSwappedLettersInAFieldGetASuggestion() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews}
        spec:
          hosts: [reviews]
          http:
          - route:
            - destination: {host: reviews}
              wieght: 100
        """
        XCTAssertEqual(errors(yaml), [
            "test.yaml:9: VirtualService/default/reviews: spec.http[0].route[0].wieght: unknown field \"wieght\" (did you mean \"weight\"?)",
        ])
    }
}
