@testable import FilterHost
import MeshAPI
import NIOHTTP1
import Transport
import XCTest

/// xxHash64, Envoy-style ring hash and maglev tables, and a request's hash key.
final class ConsistentHashTests: XCTestCase {
    func testXXHash64MatchesTheReferenceImplementation() {
        // Values from libxxhash's XXH64.
        XCTAssertEqual(XXHash64.hash(""), 0xEF46_DB37_51D8_E999)
        XCTAssertEqual(XXHash64.hash("a"), 0xD24E_C4F1_A98C_6E5B)
        XCTAssertEqual(XXHash64.hash("abc"), 0x44BC_2CF5_AD77_0999)
        XCTAssertEqual(XXHash64.hash("127.0.0.1:8080_0"), 0xF673_A43B_9624_FA24)
        XCTAssertEqual(XXHash64.hash(String(repeating: "x", count: 100)), 0x92F0_DE5A_88A3_C094)
        XCTAssertEqual(XXHash64.hash("hello world, this is 37 bytes long!!", seed: 7), 0x24C9_B389_6436_A9DD)
        XCTAssertEqual(XXHash64.hash("127.0.0.1:9000", seed: 1), 0x09D8_1648_0CE0_5242)
    }

    private let hosts = (0..<5).map { "10.0.0.\($0):8080" }
    private let keys = (0..<10_000).map { XXHash64.hash("user-\($0)") }

    private func assignments(_ t: ConsistentHashTable, _ hosts: [String]) -> [String] {
        keys.map { hosts[t.pick($0)!] }
    }

    private func check(_ build: ([String]) -> ConsistentHashTable, file: StaticString = #filePath, line: UInt = #line) {
        let before = assignments(build(hosts), hosts)
        // Spread: every host gets a fair share (within ±40 % of 1/N on 10 000 keys).
        let counts = Dictionary(grouping: before, by: { $0 }).mapValues(\.count)
        XCTAssertEqual(counts.count, hosts.count, file: file, line: line)
        for (_, n) in counts { XCTAssertTrue((1200...2800).contains(n), "\(counts)", file: file, line: line) }
        // Stable: the same table picks the same.
        XCTAssertEqual(assignments(build(hosts), hosts), before, file: file, line: line)
        // One of five leaves: only its keys move (about 1/5), the others stay put.
        let fewer = hosts.filter { $0 != hosts[2] }
        let after = assignments(build(fewer), fewer)
        var moved = 0
        for (b, a) in zip(before, after) where b != a {
            moved += 1
            XCTAssertEqual(b, hosts[2], "a key of a remaining host moved", file: file, line: line)
        }
        let share = Double(moved) / Double(keys.count)
        XCTAssertTrue((0.12...0.28).contains(share), "moved \(share)", file: file, line: line)
    }

    func testRingHashSpreadsAndMovesOnlyTheLeavingHostsKeys() {
        check { .ring(hosts: $0, minimumRingSize: nil) }
    }

    func testMaglevSpreadsAndMovesAboutOneNthOfTheKeys() {
        // Maglev moves a few keys between remaining hosts too (it trades that for balance).
        let before = assignments(.maglev(hosts: hosts, tableSize: nil), hosts)
        let fewer = hosts.filter { $0 != hosts[2] }
        let after = assignments(.maglev(hosts: fewer, tableSize: nil), fewer)
        let moved = zip(before, after).filter { $0 != $1 }.count
        let share = Double(moved) / Double(keys.count)
        XCTAssertTrue((0.15...0.30).contains(share), "moved \(share)")
        let counts = Dictionary(grouping: before, by: { $0 }).mapValues(\.count)
        for (_, n) in counts { XCTAssertTrue((1700...2300).contains(n), "\(counts)") }
    }

    func testTableSizes() {
        guard case .ring(let points) = ConsistentHashTable.ring(hosts: hosts, minimumRingSize: nil) else { return XCTFail() }
        XCTAssertEqual(points.count, 5 * 1024)  // the minimum per endpoint
        guard case .ring(let big) = ConsistentHashTable.ring(hosts: hosts, minimumRingSize: 4096) else { return XCTFail() }
        XCTAssertEqual(big.count, 5 * 4096)
        guard case .maglev(let table) = ConsistentHashTable.maglev(hosts: hosts, tableSize: 11) else { return XCTFail() }
        XCTAssertEqual(table.count, 11)
        XCTAssertEqual(Set(table), Set(0..<5))
        XCTAssertNil(ConsistentHashTable.ring(hosts: [], minimumRingSize: nil).pick(1))
    }

    private func head(path: String = "/", _ headers: [(String, String)] = []) -> RequestHead {
        RequestHead(method: "GET", scheme: "http", authority: "app", path: path, headers: HTTPHeaders(headers), version: .http11)
    }

    func testRequestKeys() {
        let byHeader = ConsistentHashConfig(header: "x-user")
        XCTAssertEqual(RequestHash(byHeader, head: head([("x-user", "ann")]), remoteAddress: nil, remoteIP: nil).hash,
                       XXHash64.hash("ann"))
        XCTAssertNil(RequestHash(byHeader, head: head(), remoteAddress: nil, remoteIP: nil).hash)

        let byQuery = ConsistentHashConfig(queryParameter: "u")
        XCTAssertEqual(RequestHash(byQuery, head: head(path: "/p?a=1&u=bob"), remoteAddress: nil, remoteIP: nil).hash,
                       XXHash64.hash("bob"))
        XCTAssertNil(RequestHash(byQuery, head: head(path: "/p?a=1"), remoteAddress: nil, remoteIP: nil).hash)

        let byIP = ConsistentHashConfig(sourceIp: true)
        XCTAssertEqual(RequestHash(byIP, head: head(), remoteAddress: "10.1.2.3:5555", remoteIP: "10.1.2.3").hash,
                       XXHash64.hash("10.1.2.3"))
    }

    func testCookieKeyAndGeneratedCookie() {
        let config = ConsistentHashConfig(cookie: .init(name: "session", path: "/app", ttlMs: 60_000))
        let sent = RequestHash(config, head: head([("cookie", "a=1; session=\"abc\"; b=2")]), remoteAddress: "1.2.3.4:9", remoteIP: nil)
        XCTAssertEqual(sent, RequestHash(hash: XXHash64.hash("abc")))

        let generated = RequestHash(config, head: head(), remoteAddress: "1.2.3.4:9", remoteIP: nil)
        let value = String(XXHash64.hash("1.2.3.4:9"), radix: 16)
        XCTAssertEqual(generated.hash, XXHash64.hash(value))
        XCTAssertEqual(generated.setCookie, "session=\"\(value)\"; Max-Age=60; Path=/app; HttpOnly")
        // The client sending the cookie back lands where the generated one did.
        let back = RequestHash(config, head: head([("cookie", generated.setCookie!.split(separator: ";")[0].description)]),
                               remoteAddress: "5.6.7.8:1", remoteIP: nil)
        XCTAssertEqual(back.hash, generated.hash)

        let noTTL = ConsistentHashConfig(cookie: .init(name: "session"))
        XCTAssertEqual(RequestHash(noTTL, head: head(), remoteAddress: "1.2.3.4:9", remoteIP: nil), RequestHash(hash: nil))
    }
}
