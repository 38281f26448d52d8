import Transport
import XCTest

/// Envoy's `server_names` match order, and reading SNI out of the ClientHello extension.
final class ServerNameTableTests: XCTestCase {
    func testExactThenLongestWildcardThenAnyName() {
        let table = ServerNameTable<String>([
            (names: ["a.example.com"], value: "a"),
            (names: ["*.example.com"], value: "wild"),
            (names: ["*.b.example.com", "B.other.org"], value: "b"),
            (names: ["a.example.com"], value: "late"),  // the first entry keeps a name
        ])
        XCTAssertEqual(table.lookup("a.example.com"), "a")
        XCTAssertEqual(table.lookup("A.Example.COM"), "a")
        XCTAssertEqual(table.lookup("x.b.example.com"), "b")
        XCTAssertEqual(table.lookup("y.x.b.example.com"), "b")
        XCTAssertEqual(table.lookup("c.example.com"), "wild")
        XCTAssertEqual(table.lookup("b.other.org"), "b")
        // `*.example.com` is not example.com itself; with no entry without names nothing matches.
        XCTAssertNil(table.lookup("example.com"))
        XCTAssertNil(table.lookup(nil))
        XCTAssertNil(table.lookup("elsewhere.net"))
        let withDefault = ServerNameTable<String>([(names: ["a.example.com"], value: "a"), (names: [], value: "any")])
        XCTAssertEqual(withDefault.lookup(nil), "any")
        XCTAssertEqual(withDefault.lookup("elsewhere.net"), "any")
        XCTAssertEqual(ServerNameTable<String>([(names: ["*"], value: "star")]).lookup("x.y"), "star")
    }

    func testServerNameExtensionParsing() {
        func parse(_ bytes: [UInt8]) -> ServerNameExtension.Parsed { ServerNameExtension.parse(ArraySlice(bytes)) }
        let name = Array("A.Example.com".utf8)
        let entry: [UInt8] = [0, 0, UInt8(name.count)] + name
        XCTAssertEqual(parse([0, UInt8(entry.count)] + entry), .hostName("a.example.com"))
        XCTAssertEqual(parse([0, UInt8(entry.count)] + entry.dropLast()), .malformed)  // truncated
        XCTAssertEqual(parse([0]), .malformed)
        XCTAssertEqual(parse([0, 0]), .hostName(nil))
        // An entry of another type first is skipped; a name that is not DNS is no name.
        let other: [UInt8] = [7, 0, 1, 0x41]
        XCTAssertEqual(parse([0, UInt8(other.count + entry.count)] + other + entry), .hostName("a.example.com"))
        XCTAssertEqual(parse([0, 5, 0, 0, 2, 0x41, 0x20]), .hostName(nil))
    }
}
