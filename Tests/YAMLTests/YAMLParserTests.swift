import XCTest
import YAML

final class YAMLParserTests: XCTestCase {
    func testScalarTypesResolveAsYAML11() throws {
        let doc = try XCTUnwrap(YAMLParser.compose("""
            port: 80
            quoted: "80"
            single: '80'
            hex: 0x1F
            octal: 017
            under: 1_000
            ratio: 0.5
            exp: 1e3
            inf: -.inf
            yes: yes
            off: Off
            none: ~
            empty:
            version: 1.10
            when: 2024-01-02
            text: hello world
            tagged: !!str 42
            """))
        func tag(_ k: String) -> Tag? { doc[k]?.tag }
        XCTAssertEqual(tag("port"), .int)
        XCTAssertEqual(doc["port"]?.int, 80)
        XCTAssertEqual(tag("quoted"), .str)
        XCTAssertNil(doc["quoted"]?.int)
        XCTAssertEqual(tag("single"), .str)
        XCTAssertEqual(doc["hex"]?.int, 31)
        XCTAssertEqual(doc["octal"]?.int, 15)
        XCTAssertEqual(doc["under"]?.int, 1000)
        XCTAssertEqual(tag("ratio"), .float)
        XCTAssertEqual(doc["ratio"]?.float, 0.5)
        XCTAssertEqual(doc["exp"]?.float, 1000)
        XCTAssertEqual(doc["inf"]?.float, -.infinity)
        XCTAssertEqual(doc["yes"]?.bool, true)
        XCTAssertEqual(doc["off"]?.bool, false)
        XCTAssertEqual(doc["none"]?.isNull, true)
        XCTAssertEqual(doc["empty"]?.isNull, true)
        XCTAssertEqual(tag("version"), .float)
        XCTAssertEqual(doc["version"]?.string, "1.10")
        XCTAssertEqual(tag("when"), .timestamp)
        XCTAssertEqual(tag("text"), .str)
        XCTAssertEqual(tag("tagged"), .str)
        XCTAssertNil(Node.scalar(Node.Scalar("true", style: .doubleQuoted)).bool)
    }

    func testBlockFlowLiteralAndFoldedScalars() throws {
        let doc = try XCTUnwrap(YAMLParser.compose("""
            hosts: [reviews, "ratings"]
            weights: {v1: 80, v2: 20}
            script: |
              line one
              line two
            folded: >-
              a
              b
            list:
            - name: x
            - name: y
            """))
        XCTAssertEqual(doc["hosts"]?.sequence?.map(\.string), ["reviews", "ratings"])
        XCTAssertEqual(doc["weights"]?["v2"]?.int, 20)
        XCTAssertEqual(doc["script"]?.string, "line one\nline two\n")
        XCTAssertEqual(doc["folded"]?.string, "a b")
        guard case .scalar(let literal)? = doc["script"] else { return XCTFail("script") }
        XCTAssertEqual(literal.style, .literal)
        XCTAssertEqual(literal.tag, .str)
        XCTAssertEqual(doc["list"]?.sequence?.count, 2)
        XCTAssertEqual(doc["list"]?.sequence?[1]["name"]?.string, "y")
    }

    func testMarksAreOneBasedLinesAndColumns() throws {
        let doc = try XCTUnwrap(YAMLParser.compose("a: 1\nb:\n  c: [x, y]\n"))
        guard case .mapping(let top) = doc else { return XCTFail("not a map") }
        XCTAssertEqual(top[1].key.mark, Node.Mark(line: 2, column: 1))
        XCTAssertEqual(doc["b"]?["c"]?.mark, Node.Mark(line: 3, column: 6))
        XCTAssertEqual(doc["b"]?["c"]?.sequence?[1].mark, Node.Mark(line: 3, column: 10))
    }

    func testMultipleDocumentsIncludingEmptyOnes() throws {
        let docs = try YAMLParser.documents("a: 1\n---\n---\nkind: x\n...\n")
        XCTAssertEqual(docs.count, 3)
        XCTAssertEqual(docs[1].isNull, true)
        XCTAssertEqual(docs[2]["kind"]?.string, "x")
        XCTAssertEqual(docs[2].mark?.line, 4)
        XCTAssertThrowsError(try YAMLParser.compose("a: 1\n---\nb: 2\n"))
        XCTAssertNil(try YAMLParser.compose(""))
    }

    func testAnchorsAndAliasesAreResolved() throws {
        let doc = try XCTUnwrap(YAMLParser.compose("""
            base: &labels
              app: web
              version: v1
            copy: *labels
            items: [&one 1, *one]
            """))
        XCTAssertEqual(doc["copy"], doc["base"])
        XCTAssertEqual(doc["copy"]?["app"]?.string, "web")
        XCTAssertEqual(doc["items"]?.sequence?.compactMap(\.int), [1, 1])
        XCTAssertThrowsError(try YAMLParser.compose("a: *missing\n")) { error in
            XCTAssertEqual((error as? YAMLError)?.mark.line, 1)
        }
    }

    func testErrorsCarryTheirLine() throws {
        XCTAssertThrowsError(try YAMLParser.compose("a: 1\nb: [1, 2\nc: 3\n")) { error in
            let e = try? XCTUnwrap(error as? YAMLError)
            XCTAssertEqual(e?.stage, .parser)
            XCTAssertEqual(e?.mark.line, 3)
            XCTAssertEqual(e?.contextMark?.line, 2)
        }
        XCTAssertThrowsError(try YAMLParser.compose("a: 1\n  b: 2\n")) { error in
            XCTAssertEqual((error as? YAMLError)?.mark.line, 2)
            XCTAssertTrue("\(error)".hasPrefix("2:"), "\(error)")
        }
        XCTAssertThrowsError(try YAMLParser.compose("a: 1\nb: 2\na: 3\n")) { error in
            XCTAssertEqual((error as? YAMLError)?.mark.line, 3)
            XCTAssertEqual((error as? YAMLError)?.problem, "found duplicate key \"a\"")
        }
        // Documents before a broken one are still read.
        let parser = YAMLParser("a: 1\n---\nb: [\n")
        XCTAssertEqual(try parser.nextDocument()?["a"]?.int, 1)
        XCTAssertThrowsError(try parser.nextDocument())
    }

    func testEmitterQuotesWhatWouldReadAsAnotherType() throws {
        func str(_ s: String) -> Node { .scalar(Node.Scalar(s, tag: .str, style: .plain, mark: nil)) }
        let node = Node.sequence(Node.Sequence([.mapping(Node.Mapping([
            (str("code"), str("IST0101")), (str("port"), str("80")), (str("message"), str("not found: \"bar\"")),
        ]))]))
        let text = try YAMLEmitter.emit(node)
        XCTAssertEqual(text, "- code: IST0101\n  port: '80'\n  message: 'not found: \"bar\"'\n")
        let back = try XCTUnwrap(YAMLParser.compose(text)?.sequence?.first)
        XCTAssertEqual(back["port"]?.tag, .str)
        XCTAssertEqual(back["message"]?.string, "not found: \"bar\"")
    }

    func testNodeDecoderReadsLikeYAML() throws {
        struct Config: Decodable, Equatable {
            var name: String
            var port: Int
            var enabled: Bool?
            var ratio: Double?
            var tags: [String]
            var labels: [String: String]?
        }
        let c = try NodeDecoder().decode(Config.self, from: """
            name: 42
            port: 8080
            enabled: yes
            ratio: 1
            tags: [a, b]
            labels: {app: web}
            """)
        XCTAssertEqual(c, Config(name: "42", port: 8080, enabled: true, ratio: 1, tags: ["a", "b"], labels: ["app": "web"]))
        XCTAssertThrowsError(try NodeDecoder().decode(Config.self, from: "name: x\nport: \"80\"\ntags: []\n")) { error in
            guard case DecodingError.typeMismatch(_, let ctx)? = error as? DecodingError else { return XCTFail("\(error)") }
            XCTAssertEqual(ctx.codingPath.map(\.stringValue), ["port"])
        }
        XCTAssertThrowsError(try NodeDecoder().decode(Config.self, from: "name: x\ntags: []\n")) { error in
            guard case DecodingError.keyNotFound(let key, _)? = error as? DecodingError else { return XCTFail("\(error)") }
            XCTAssertEqual(key.stringValue, "port")
        }
    }
}
