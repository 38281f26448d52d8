@testable import FilterHost
@testable import Filters
import MeshAPI
import NIOCore
import Transport
import XCTest

/// AuthorizationPolicies on TCP connections: the `meshd.rbac` network filter's decision, made
/// from the connection's addresses, SNI and the listener's server port.
final class RBACNetworkFilterTests: XCTestCase {
    private func decide(_ config: JSONValue, from source: String = "127.0.0.1", sni: String? = nil,
                        stats: HarnessStats = HarnessStats()) throws -> TCPAdmission {
        let factory = try XCTUnwrap(FilterCatalog.registry.networkBuilder(named: "meshd.rbac"))(config)
        let connection = ConnectionInfo(remoteAddress: try SocketAddress(ipAddress: source, port: 50000),
                                        localAddress: try SocketAddress(ipAddress: "127.0.0.1", port: 41400), serverName: sni)
        return factory.makeObserver(stats: stats).admit(TCPConnectionFacts(listener: "gateway_31400", connection: connection))
    }

    private func config(_ policies: [JSONValue]) -> JSONValue {
        .object(["policies": .array(policies), "destinationPort": .number(31400)])
    }

    private func policy(_ name: String, _ action: String, _ rules: [JSONValue]) -> JSONValue {
        .object(["name": .string(name), "action": .string(action), "rules": .array(rules)])
    }

    private func source(_ field: String, _ values: [String]) -> JSONValue {
        .object(["from": .array([.object(["source": .object([field: .array(values.map(JSONValue.string))])])])])
    }

    private func ports(_ values: [String]) -> JSONValue {
        .object(["to": .array([.object(["operation": .object(["ports": .array(values.map(JSONValue.string))])])])])
    }

    func testDenyOnRemoteIPClosesAndIsCounted() throws {
        let stats = HarnessStats()
        let deny = config([policy("ns.deny", "DENY", [source("remoteIpBlocks", ["127.0.0.1/32"])])])
        XCTAssertEqual(try decide(deny, stats: stats), .reject(details: "rbac_access_denied_matched_policy[ns.deny]"))
        XCTAssertEqual(stats.values["meshd_rbac_tcp_denied_total{listener=\"gateway_31400\"}"], 1)
        XCTAssertEqual(try decide(deny, from: "10.1.2.3"), .admit)
        let ipBlocks = config([policy("ns.deny", "DENY", [source("ipBlocks", ["127.0.0.0/8"])])])
        XCTAssertEqual(try decide(ipBlocks), .reject(details: "rbac_access_denied_matched_policy[ns.deny]"))
    }

    func testAllowMatchesTheServerPortNotTheBoundOne() throws {
        XCTAssertEqual(try decide(config([policy("ns.allow", "ALLOW", [ports(["31400"])])])), .admit)
        XCTAssertEqual(try decide(config([policy("ns.allow", "ALLOW", [ports(["41400"])])])),
                       .reject(details: "rbac_access_denied_matched_policy[none]"))
    }

    func testNoRulesDeniesAllAndNoPolicyAllows() throws {
        XCTAssertEqual(try decide(config([policy("ns.all", "ALLOW", [])])), .reject(details: "rbac_access_denied_matched_policy[none]"))
        XCTAssertEqual(try decide(config([])), .admit)
    }

    func testPrincipalsNeedAVerifiedPeerSoNeverMatchOnTCP() throws {
        let allow = config([policy("ns.allow", "ALLOW", [source("principals", ["*"])])])
        XCTAssertEqual(try decide(allow), .reject(details: "rbac_access_denied_matched_policy[none]"))
        let notNamespaces = config([policy("ns.deny", "DENY", [source("notNamespaces", ["default"])])])
        XCTAssertEqual(try decide(notNamespaces), .reject(details: "rbac_access_denied_matched_policy[ns.deny]"))
    }

    func testSNIConditionAndAuditNeverCloses() throws {
        let sni: JSONValue = .object(["when": .array([.object(["key": .string("connection.sni"),
                                                               "values": .array([.string("*.example.com")])])])])
        let deny = config([policy("ns.deny", "DENY", [sni]), policy("ns.audit", "AUDIT", [.object([:])])])
        XCTAssertEqual(try decide(deny, sni: "a.example.com"), .reject(details: "rbac_access_denied_matched_policy[ns.deny]"))
        XCTAssertEqual(try decide(deny, sni: "a.example.org"), .admit)
        XCTAssertEqual(try decide(deny), .admit)
    }
}
