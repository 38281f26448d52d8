import Dispatch
@testable import FilterHost
import Transport
import XCTest

/// RE2Regex: Envoy's safe_regex semantics (full match), RE2 syntax, refusals that say why.
final class RE2RegexTests: XCTestCase {
    private func refusal(_ pattern: String, maxProgramSize: Int = RE2Regex.defaultMaxProgramSize) -> RE2Error? {
        do {
            _ = try RE2Regex(pattern, maxProgramSize: maxProgramSize)
            return nil
        } catch {
            return error
        }
    }

    private func rewriteRefusal(_ re: RE2Regex, _ rewrite: String) -> RE2Error? {
        do {
            try re.checkRewrite(rewrite)
            return nil
        } catch {
            return error
        }
    }

    func testWholeMatchCoversTheWholeTextLikeEnvoySafeRegex() throws {
        let re = try RE2Regex("/v[0-9]+/items")
        XCTAssertTrue(re.wholeMatch("/v12/items"))
        XCTAssertFalse(re.wholeMatch("/v12/items/3"))
        XCTAssertFalse(re.wholeMatch("x/v12/items"))
        XCTAssertFalse(re.wholeMatch(""))
        // An alternation is anchored as a whole, not just its first and last branch.
        let methods = try RE2Regex("GET|HEAD")
        XCTAssertTrue(methods.wholeMatch("HEAD"))
        XCTAssertFalse(methods.wholeMatch("GETX"))
        XCTAssertFalse(methods.wholeMatch("XHEAD"))
        // Explicit anchors are allowed and change nothing.
        let anchored = try RE2Regex("^/a$")
        XCTAssertTrue(anchored.wholeMatch("/a"))
        XCTAssertFalse(anchored.wholeMatch("/a/"))
        XCTAssertTrue(try RE2Regex(".*").wholeMatch(""))
    }

    func testPartialMatchFindsTheTextAnywhereUnlessAnchored() throws {
        let re = try RE2Regex("[0-9]+")
        XCTAssertTrue(re.partialMatch("/v12/items"))
        XCTAssertFalse(re.partialMatch("/items"))
        let start = try RE2Regex("^/api")
        XCTAssertTrue(start.partialMatch("/api/v1"))
        XCTAssertFalse(start.partialMatch("/x/api"))
        XCTAssertTrue(try RE2Regex("").partialMatch("anything"))
    }

    func testRE2Syntax() throws {
        XCTAssertTrue(try RE2Regex("(?i)/Reviews/.*").wholeMatch("/REVIEWS/1"))
        XCTAssertTrue(try RE2Regex("/reviews", caseSensitive: false).wholeMatch("/ReViEwS"))
        XCTAssertTrue(try RE2Regex("(?P<version>v[0-9]+)-\\d+").wholeMatch("v2-10"))
        XCTAssertTrue(try RE2Regex("[[:alpha:]]+").wholeMatch("abc"))
        XCTAssertTrue(try RE2Regex("\\Qa.b\\E").wholeMatch("a.b"))
        XCTAssertFalse(try RE2Regex("\\Qa.b\\E").wholeMatch("axb"))
        XCTAssertTrue(try RE2Regex("é+").wholeMatch("ééé"))
        XCTAssertTrue(try RE2Regex("\\bfoo\\b").partialMatch("a foo b"))
        // Bytes after a NUL still count, in the pattern and in the text.
        XCTAssertTrue(try RE2Regex("a\u{0}b").wholeMatch("a\u{0}b"))
        XCTAssertFalse(try RE2Regex("a\u{0}b").wholeMatch("a\u{0}c"))
        // Substrings (header values, query parameters) match without a copy.
        let text = "xx/v1/itemsyy"
        let inner = text.dropFirst(2).dropLast(2)
        XCTAssertTrue(try RE2Regex("/v[0-9]/items").wholeMatch(inner))
        let re = try RE2Regex("(a)(b)?")
        XCTAssertEqual(re.captureGroupCount, 2)
        XCTAssertGreaterThan(re.programSize, 0)
    }

    func testRefusesBacktrackingOnlyConstructsWithAClearReason() throws {
        let cases: [(String, String)] = [
            ("(a)\\1", "backreferences are not supported"),
            ("(?P<x>a)(?P=x)", "backreferences are not supported"),
            ("(?=/admin)/.*", "lookahead is not supported"),
            ("(?!/admin)/.*", "lookahead is not supported"),
            ("(?<=a)b", "lookbehind is not supported"),
            ("(?<!a)b", "lookbehind is not supported"),
            ("(?<name>a)", "write a named group as (?P<name>...)"),
            ("(?>a)", "atomic groups are not supported"),
            ("a++", "possessive quantifiers are not supported"),
        ]
        for (pattern, hint) in cases {
            let error = try XCTUnwrap(refusal(pattern), pattern)
            XCTAssertEqual(error.kind, .invalid, pattern)
            XCTAssertTrue(error.description.hasPrefix("invalid regex \"\(pattern)\": "), error.description)
            XCTAssertTrue(error.description.contains(hint), error.description)
            XCTAssertTrue(error.description.contains("RE2 syntax"), error.description)
        }
        let plain = try XCTUnwrap(refusal("/v[0-9+"))
        XCTAssertEqual(plain.description, "invalid regex \"/v[0-9+\": missing ]: [0-9+")
        XCTAssertEqual(refusal("(a")?.description, "invalid regex \"(a\": missing ): (a")
        XCTAssertEqual(refusal("*x")?.kind, .invalid)
        XCTAssertEqual(refusal("a{1001}")?.kind, .invalid)
    }

    func testRefusesAProgramOverTheLimit() throws {
        // Envoy's rule: a program size equal to the limit is fine, one more is refused.
        let atLimit = String(repeating: "a", count: 96)
        XCTAssertEqual(try RE2Regex(atLimit).programSize, 100)
        let over = atLimit + "a"
        let error = try XCTUnwrap(refusal(over))
        XCTAssertEqual(error.kind, .tooComplex(programSize: 101, limit: 100))
        XCTAssertEqual(error.description, "regex \"\(over)\" is too complex: RE2 program size 101 exceeds the maximum program size of 100")

        XCTAssertEqual(refusal("x{2,100}")?.kind, .tooComplex(programSize: 202, limit: 100))
        XCTAssertNil(refusal("x{2,100}", maxProgramSize: 1000))
        XCTAssertEqual(refusal("\\pL")?.kind, .tooComplex(programSize: 1197, limit: 100))
        // Bigger than RE2's own memory budget: refused without a size.
        XCTAssertEqual(refusal("(\\pL{1000})", maxProgramSize: Int.max)?.kind, .tooComplex(programSize: nil, limit: Int.max))
    }

    func testNestedQuantifiersRunInLinearTime() throws {
        // A backtracking engine needs 2^n steps for this; RE2 one pass.
        let re = try RE2Regex("(a+)+b")
        let text = String(repeating: "a", count: 100_000) + "c"
        let start = DispatchTime.now()
        XCTAssertFalse(re.wholeMatch(text))
        XCTAssertFalse(re.partialMatch(text))
        XCTAssertTrue(re.wholeMatch(String(repeating: "a", count: 100_000) + "b"))
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        XCTAssertLessThan(seconds, 10, "liveness bound only")
    }

    func testReplaceAllUsesRE2RewriteStrings() throws {
        let re = try RE2Regex("/v1/([^/]+)/(.*)")
        XCTAssertEqual(re.replaceAll(in: "/v1/books/12", with: "/api/\\1?id=\\2"), "/api/books?id=12")
        XCTAssertEqual(re.replaceAll(in: "/v2/books/12", with: "/api/\\1"), "/v2/books/12")
        XCTAssertEqual(try RE2Regex("a").replaceAll(in: "banana", with: "o"), "bonono")
        XCTAssertEqual(try RE2Regex("n").replaceAll(in: "banana", with: "\\\\"), "ba\\a\\a")
        XCTAssertEqual(try RE2Regex("é").replaceAll(in: "café", with: "e\\0"), "cafeé")
        XCTAssertNoThrow(try re.checkRewrite("/\\2/\\1/\\0"))
        let missing = try XCTUnwrap(rewriteRefusal(re, "\\3"))
        XCTAssertEqual(missing.kind, .invalidRewrite)
        XCTAssertTrue(missing.description.hasPrefix("invalid rewrite for regex \"/v1/([^/]+)/(.*)\": "), missing.description)
        XCTAssertThrowsError(try re.checkRewrite("\\x"))
        // An unusable rewrite leaves the text alone rather than half-applying.
        XCTAssertEqual(re.replaceAll(in: "/v1/books/12", with: "\\3"), "/v1/books/12")
        XCTAssertEqual(re.replaceAll(in: "/v1/books/12", with: "a\\x"), "/v1/books/12")
    }

    func testOneCompiledRegexMatchesFromManyThreads() throws {
        let re = try RE2Regex("/items/[0-9]+(/[a-z]+)*")
        let paths = (0..<64).map { "/items/\($0)/a/bc" }
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for _ in 0..<200 {
                for p in paths { precondition(re.wholeMatch(p) && !re.wholeMatch(p + "/\(worker)")) }
            }
        }
    }
}
