import MeshAPI
import XCTest

/// JSONText and the plain-text helpers that replaced Foundation's JSONSerialization,
/// trimmingCharacters, String(format:) and removingPercentEncoding.
final class JSONTextTests: XCTestCase {
    func testRenderSortsKeysAndKeepsSlashes() {
        let tree: [String: Any] = ["b": [1, 2.5, true, "a/b"], "a": ["x": JSONText.null], "c": [String: Any](), "d": 3.0]
        XCTAssertEqual(JSONText.render(tree), #"{"a":{"x":null},"b":[1,2.5,true,"a/b"],"c":{},"d":3}"#)
        XCTAssertEqual(JSONText.render(["k": [1]], pretty: true), "{\n  \"k\" : [\n    1\n  ]\n}")
        XCTAssertEqual(JSONText.quoted("a\"\\\n\u{01}é"), #""a\"\\\n\u0001é""#)
    }

    func testParseRoundTripsAndRefusesBadText() throws {
        let text = #"{"name": "p\u00e9/\ud83d\ude00", "n": [1, -2.5e1, null, false], "o": {}}"#
        let tree = try XCTUnwrap(JSONText.parse(Array(text.utf8)) as? [String: Any])
        XCTAssertEqual(tree["name"] as? String, "pé/😀")
        let list = try XCTUnwrap(tree["n"] as? [Any])
        XCTAssertEqual(list[0] as? Int, 1)
        XCTAssertEqual(list[1] as? Double, -25)
        XCTAssertTrue(list[2] is JSONText.Null)
        XCTAssertEqual(list[3] as? Bool, false)
        XCTAssertEqual(JSONText.render(tree), #"{"n":[1,-25,null,false],"name":"pé/😀","o":{}}"#)
        for bad in ["", "{", "[1,]x", "{\"a\" 1}", "\"open", "tru", "1 2", #""\q""#] {
            XCTAssertThrowsError(try JSONText.parse(Array(bad.utf8)), bad)
        }
    }

    func testPlainTextHelpers() {
        XCTAssertEqual(" \t a b \r\n".trimmed, "a b")
        XCTAssertEqual("   ".trimmed, "")
        XCTAssertEqual(7.zeroPadded(4), "0007")
        XCTAssertEqual(12345.zeroPadded(4), "12345")
        XCTAssertEqual("a%2Fb%20c".percentDecoded, "a/b c")
        XCTAssertNil("bad%2".percentDecoded)
        XCTAssertNil("bad%zz".percentDecoded)
        XCTAssertNil("%ff".percentDecoded)
        do {
            _ = try String(contentsOfFile: "/nonexistent/meshd-test", encoding: .utf8)
            XCTFail("read a file that does not exist")
        } catch {
            XCTAssertEqual(error.plainDescription, "No such file or directory")
        }
    }
}
