import ControlPlane
import Foundation
import XCTest

/// Runs tests/corpus: small resources per kind written from Istio's validation rules, each
/// with the verdict, message and line `meshd validate` must give (tests/corpus/README.md).
final class CorpusTests: XCTestCase {
    struct Expectation: Equatable {
        var severity: ValidationError.Severity
        var line: Int
        var text: String
    }

    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("tests/corpus").path

    func testEveryCorpusFileGetsItsExpectedVerdictMessagesAndLines() throws {
        let files = try FileManager.default.subpathsOfDirectory(atPath: Self.corpus).filter { $0.hasSuffix(".yaml") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 25)
        for name in files {
            let path = Self.corpus + "/" + name
            let text = try String(contentsOfFile: path, encoding: .utf8)
            let (valid, expected) = Self.expectations(text)
            XCTAssertTrue(valid != expected.contains { $0.severity == .error }, "\(name): expect valid, or errors")
            let store = ConfigStore.parse(yaml: text, file: name)
            let errors = Validator.validate(store)
            let warnings = Validator.warnings(store)
            let wantErrors = expected.filter { $0.severity == .error }
            XCTAssertEqual(errors.count, wantErrors.count, "\(name): \(errors.map(\.description))")
            for want in expected {
                let pool = want.severity == .error ? errors : warnings
                XCTAssertTrue(pool.contains { $0.location.line == want.line && $0.description.contains(want.text) },
                              "\(name): no \(want.severity) at line \(want.line) containing \"\(want.text)\" in \(pool.map(\.description))")
            }
        }
    }

    /// `# expect: valid`, `# expect: error LINE TEXT`, `# expect: warning LINE TEXT`.
    static func expectations(_ text: String) -> (valid: Bool, [Expectation]) {
        var out: [Expectation] = []
        var sawValid = false
        for line in text.split(separator: "\n") where line.hasPrefix("# expect: ") {
            let words = line.dropFirst("# expect: ".count).split(separator: " ", maxSplits: 2).map(String.init)
            if words.first == "valid" { sawValid = true; continue }
            guard words.count == 3, let severity = ValidationError.Severity(rawValue: words[0]), let n = Int(words[1]) else {
                XCTFail("bad expectation: \(line)")
                continue
            }
            out.append(Expectation(severity: severity, line: n, text: words[2]))
        }
        return (sawValid, out)
    }
}
