@testable import FilterHost
@testable import Filters
import MeshAPI
import NIOCore
import NIOEmbedded
import Transport
import XCTest

/// AuthorizationPolicy semantics through the `meshd.rbac` filter: actions, their order, and
/// every source, operation and condition field. Policies are written as the control plane
/// writes them (Istio's own shape).
final class RBACFilterTests: XCTestCase {
    let loop = EmbeddedEventLoop()

    /// A stream whose chain is `filters` (YAML list entries) on a listener.
    func harness(_ filters: String, principal: String? = nil, sni: String? = nil) throws -> ChainHarness {
        let snapshot = try buildSnapshot("""
        listeners: [{name: main, address: 127.0.0.1, port: 8080, routeConfig: rc, httpFilters: [\(filters)]}]
        clusters: [{name: c, endpoints: [{address: 127.0.0.1, port: 9}]}]
        routeConfigs: [{name: rc, virtualHosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: c}}]}]}]
        """)
        let s = try ChainHarness(eventLoop: loop, factories: snapshot.filterChains["main"]!, bootstrap: snapshot.bootstrap)
        if let principal {
            let cert = TLSCertificateFacts(der: [], pem: "", subject: "", issuer: "", serialNumber: "1",
                                           uriSANs: ["spiffe://" + principal], dnsSANs: [], sha256Digest: "",
                                           validFrom: 0, expiration: 0)
            s.connectionInfo.tls = TLSConnectionFacts(version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256",
                                                      peerCertificate: cert, peerCertificateValidated: true)
            s.connectionInfo.isTLS = true
        }
        s.connectionInfo.serverName = sni
        return s
    }

    /// The status a request gets: 200 when it reached the upstream, else the local reply's.
    func status(_ policies: String, method: String = "GET", path: String = "/", headers: [(String, String)] = [],
                principal: String? = nil, sni: String? = nil, extra: String = "") throws -> Int {
        let s = try harness("{name: meshd.rbac, config: {\(extra)policies: \(policies)}}", principal: principal, sni: sni)
        s.sendRequest(method: method, path: path, headers: headers)
        if let reply = s.localReply {
            XCTAssertEqual(reply.body, "RBAC: access denied")
            XCTAssertEqual(s.streamInfo.responseFlags, [.rbacAccessDenied])
            return reply.status
        }
        XCTAssertNotNil(s.upstreamHead)
        return 200
    }

    func allow(_ rule: String) -> String { "[{name: ns.p, action: ALLOW, rules: [\(rule)]}]" }

    // MARK: actions

    func testNoPolicyAllowsAndEmptySpecDeniesAll() throws {
        XCTAssertEqual(try status("[]"), 200)
        // `spec: {}`: an ALLOW policy without rules matches nothing, so nothing is allowed.
        XCTAssertEqual(try status("[{name: ns.deny-all}]"), 403)
        XCTAssertEqual(try status("[{name: ns.p, action: ALLOW, rules: []}]"), 403)
        // `rules: [{}]`: one empty rule matches every request.
        XCTAssertEqual(try status(allow("{}")), 200)
    }

    func testDenyWinsOverAllowAndDenyWithoutRulesDeniesNothing() throws {
        let both = "[{name: ns.a, action: ALLOW, rules: [{}]}, {name: ns.d, action: DENY, rules: [{to: [{operation: {paths: [/admin*]}}]}]}]"
        XCTAssertEqual(try status(both, path: "/admin/x"), 403)
        XCTAssertEqual(try status(both, path: "/public"), 200)
        XCTAssertEqual(try status("[{name: ns.d, action: DENY}]"), 200)
    }

    func testAnAllowPolicyThatMatchesNothingDeniesAndAnyMatchingOneAllows() throws {
        let two = "[{name: ns.a, action: ALLOW, rules: [{to: [{operation: {methods: [GET]}}]}]}, {name: ns.b, action: ALLOW, rules: [{to: [{operation: {paths: [/open]}}]}]}]"
        XCTAssertEqual(try status(two, method: "GET", path: "/x"), 200)
        XCTAssertEqual(try status(two, method: "POST", path: "/open"), 200)
        XCTAssertEqual(try status(two, method: "POST", path: "/x"), 403)
    }

    func testAuditNeverDeniesAndMarksTheAccessLog() throws {
        let s = try harness("{name: meshd.rbac, config: {policies: [{name: ns.au, action: AUDIT, rules: [{to: [{operation: {paths: [/audited]}}]}]}]}}")
        s.sendRequest(path: "/audited")
        XCTAssertNil(s.localReply)
        XCTAssertEqual(s.streamInfo.dynamicMetadata["envoy.common"]?["access_log_hint"], .bool(true))
        let quiet = try harness("{name: meshd.rbac, config: {policies: [{name: ns.au, action: AUDIT, rules: [{to: [{operation: {paths: [/audited]}}]}]}]}}")
        quiet.sendRequest(path: "/other")
        XCTAssertNil(quiet.streamInfo.dynamicMetadata["envoy.common"])
    }

    func testCustomWithoutAProviderFailsClosedForWhatItMatches() throws {
        let custom = "[{name: ns.c, action: CUSTOM, rules: [{to: [{operation: {paths: [/ext*]}}]}]}]"
        XCTAssertEqual(try status(custom, path: "/ext/a"), 403)
        XCTAssertEqual(try status(custom, path: "/int"), 200)
    }

    /// A matching CUSTOM policy holds the request for its authorizer's check; a check that
    /// gets no answer follows `failOpen`, else answers `statusOnError` with flag UAEX.
    func testCustomAsksItsProviderAndANoAnswerFollowsFailOpen() throws {
        for failOpen in [false, true] {
            let s = try harness("""
            {name: meshd.rbac, config: {providers: {authz: {cluster: c, failOpen: \(failOpen), statusOnError: 503}},
             policies: [{name: ns.c, action: CUSTOM, provider: authz, rules: [{to: [{operation: {paths: [/ext*]}}]}]}]}}
            """)
            let upstream = LuaLimitsTests.PendingUpstream()
            s.upstreamClient = upstream
            s.sendRequest(path: "/int")
            XCTAssertNotNil(s.upstreamHead, "not matched: no check")
            XCTAssertEqual(upstream.waiting.count, 0)

            let held = try harness("""
            {name: meshd.rbac, config: {providers: {authz: {cluster: c, failOpen: \(failOpen), statusOnError: 503}},
             policies: [{name: ns.c, action: CUSTOM, provider: authz, rules: [{to: [{operation: {paths: [/ext*]}}]}]}]}}
            """)
            held.upstreamClient = upstream
            held.sendRequest(path: "/ext/a")
            XCTAssertNil(held.upstreamHead, "held while the check is out")
            XCTAssertNil(held.localReply)
            XCTAssertEqual(upstream.waiting.count, 1)
            upstream.failAll()
            loop.run()
            if failOpen {
                XCTAssertNotNil(held.upstreamHead)
            } else {
                XCTAssertEqual(held.localReply?.status, 503)
                XCTAssertEqual(held.localReply?.body, "")
                XCTAssertEqual(held.streamInfo.responseFlags, [.unauthorizedExternalService])
            }
        }
    }

    /// `includeRequestBodyInCheck`: the check waits for the body (the request held meanwhile);
    /// one longer than `maxRequestBytes` gets 413 unless `allowPartialMessage` sends its start.
    func testTheCheckWaitsForTheBodyUpToItsLimit() throws {
        func harness(partial: Bool) throws -> ChainHarness {
            try self.harness("""
            {name: meshd.rbac, config: {providers: {authz: {cluster: c, includeRequestBodyInCheck: {maxRequestBytes: 8, allowPartialMessage: \(partial)}}},
             policies: [{name: ns.c, action: CUSTOM, provider: authz, rules: [{}]}]}}
            """)
        }
        let upstream = LuaLimitsTests.PendingUpstream()
        let s = try harness(partial: false)
        s.upstreamClient = upstream
        s.sendRequestHeaders(path: "/a")
        s.sendRequestData("1234", end: false)
        XCTAssertEqual(upstream.waiting.count, 0, "the check waits for the body")
        s.sendRequestData("5678", end: true)
        XCTAssertEqual(upstream.waiting.count, 1)
        XCTAssertNil(s.upstreamHead, "held while the check is out")

        let big = try harness(partial: false)
        big.upstreamClient = upstream
        big.sendRequestHeaders(path: "/a")
        big.sendRequestData("123456789", end: false)
        XCTAssertEqual(big.localReply?.status, 413)
        XCTAssertEqual(upstream.waiting.count, 1, "no check for a body over the limit")

        let partial = try harness(partial: true)
        partial.upstreamClient = upstream
        partial.sendRequestHeaders(path: "/a")
        partial.sendRequestData("123456789", end: false)
        XCTAssertNil(partial.localReply)
        XCTAssertEqual(upstream.waiting.count, 2, "the first maxRequestBytes go at once")

        let provider = try ExtAuthzProvider(.object(["cluster": .string("c"), "includeRequestBodyInCheck": .object([:])]), at: "p")
        let head = RequestHead(method: "POST", scheme: "http", authority: "a", path: "/x", headers: [:], version: .http11)
        let check = provider.checkRequest(for: head, bodyBytes: 8, partial: true)
        XCTAssertEqual(check.headers["content-length"], ["8"])
        XCTAssertEqual(check.headers["x-envoy-auth-partial-body"], ["true"])
        XCTAssertNil(try ExtAuthzProvider(.object(["cluster": .string("c")]), at: "p").checkRequest(for: head)
            .headers.first(name: "x-envoy-auth-partial-body"), "only a check that carries the body says so")
    }

    /// Dry-run policies never deny; their results are in the RBAC filter's metadata.
    func testDryRunPoliciesAreEvaluatedButNotEnforced() throws {
        let policies = """
        [{name: ns.deny, action: DENY, dryRun: true, rules: [{}]},
         {name: ns.allow, action: ALLOW, dryRun: true, rules: [{to: [{operation: {paths: [/ip]}}]}]}]
        """
        let s = try harness("{name: meshd.rbac, config: {policies: \(policies)}}")
        s.sendRequest(path: "/headers")
        XCTAssertNotNil(s.upstreamHead)
        let metadata = s.streamInfo.dynamicMetadata["envoy.filters.http.rbac"]
        XCTAssertEqual(metadata?["istio_dry_run_deny_shadow_engine_result"], .string("denied"))
        XCTAssertEqual(metadata?["istio_dry_run_deny_shadow_effective_policy_id"], .string("ns.deny"))
        XCTAssertEqual(metadata?["istio_dry_run_allow_shadow_engine_result"], .string("denied"))
        XCTAssertNil(metadata?["istio_dry_run_allow_shadow_effective_policy_id"])
    }

    func testDeniesAreCountedAndNameThePolicy() throws {
        let s = try harness("{name: meshd.rbac, config: {policies: [{name: ns.d, action: DENY, rules: [{}]}]}}")
        s.sendRequest()
        XCTAssertEqual(s.localReply?.status, 403)
        XCTAssertEqual(s.counters.values["meshd_rbac_denied_total"], 1)
        XCTAssertEqual(s.streamInfo.dynamicMetadata["envoy.filters.http.rbac"]?["enforced_effective_policy_id"], .string("ns.d"))
    }

    // MARK: source

    func testPrincipalsAndNamespacesComeFromThePeerCertificate() throws {
        let p = "cluster.local/ns/foo/sa/sleep"
        XCTAssertEqual(try status(allow("{from: [{source: {principals: [cluster.local/ns/foo/sa/sleep]}}]}"), principal: p), 200)
        XCTAssertEqual(try status(allow("{from: [{source: {principals: [cluster.local/ns/foo/sa/sleep]}}]}")), 403, "plaintext has no principal")
        XCTAssertEqual(try status(allow("{from: [{source: {principals: [\"*\"]}}]}"), principal: p), 200)
        XCTAssertEqual(try status(allow("{from: [{source: {principals: [\"*\"]}}]}")), 403)
        XCTAssertEqual(try status(allow("{from: [{source: {principals: [\"*/sa/sleep\"]}}]}"), principal: p), 200)
        XCTAssertEqual(try status(allow("{from: [{source: {principals: [\"cluster.local/ns/bar/*\"]}}]}"), principal: p), 403)
        XCTAssertEqual(try status(allow("{from: [{source: {notPrincipals: [cluster.local/ns/foo/sa/sleep]}}]}"), principal: p), 403)
        XCTAssertEqual(try status(allow("{from: [{source: {notPrincipals: [cluster.local/ns/foo/sa/sleep]}}]}")), 200)
        XCTAssertEqual(try status(allow("{from: [{source: {namespaces: [foo]}}]}"), principal: p), 200)
        XCTAssertEqual(try status(allow("{from: [{source: {namespaces: [bar]}}]}"), principal: p), 403)
        XCTAssertEqual(try status(allow("{from: [{source: {notNamespaces: [foo]}}]}"), principal: p), 403)
        XCTAssertEqual(try status(allow("{from: [{source: {serviceAccounts: [foo/sleep]}}]}"), principal: p), 200)
        XCTAssertEqual(try status(allow("{from: [{source: {notServiceAccounts: [foo/sleep]}}]}"), principal: p), 403)
    }

    func testAnUnverifiedPeerCertificateIsNoPrincipal() throws {
        let s = try harness("{name: meshd.rbac, config: {policies: \(allow("{from: [{source: {principals: [\"*\"]}}]}"))}}",
                            principal: "cluster.local/ns/foo/sa/sleep")
        s.connectionInfo.tls?.peerCertificateValidated = false
        s.sendRequest()
        XCTAssertEqual(s.localReply?.status, 403)
    }

    func testIPBlocksAndRemoteIPBlocks() throws {
        // The harness's peer is 192.0.2.7.
        XCTAssertEqual(try status(allow("{from: [{source: {ipBlocks: [192.0.2.0/24]}}]}")), 200)
        XCTAssertEqual(try status(allow("{from: [{source: {ipBlocks: [192.0.2.7]}}]}")), 200)
        XCTAssertEqual(try status(allow("{from: [{source: {ipBlocks: [10.0.0.0/8]}}]}")), 403)
        XCTAssertEqual(try status(allow("{from: [{source: {notIpBlocks: [192.0.0.0/16]}}]}")), 403)
        // remote.ip on a sidecar: the X-Forwarded-For entry before the one the engine
        // appended for the peer; on a gateway (the default): the peer, whatever XFF says.
        let xff = [("x-forwarded-for", "203.0.113.9, 198.51.100.4,192.0.2.7")]
        let sidecar = "remoteFromForwardedFor: true, "
        XCTAssertEqual(try status(allow("{from: [{source: {remoteIpBlocks: [198.51.100.0/24]}}]}"), headers: xff, extra: sidecar), 200)
        XCTAssertEqual(try status(allow("{from: [{source: {remoteIpBlocks: [203.0.113.9]}}]}"), headers: xff, extra: sidecar), 403)
        XCTAssertEqual(try status(allow("{from: [{source: {notRemoteIpBlocks: [198.51.100.4]}}]}"), headers: xff, extra: sidecar), 403)
        XCTAssertEqual(try status(allow("{from: [{source: {remoteIpBlocks: [192.0.2.7]}}]}"),
                                  headers: [("x-forwarded-for", "192.0.2.7")], extra: sidecar), 200, "only the peer: the peer")
        XCTAssertEqual(try status(allow("{from: [{source: {remoteIpBlocks: [192.0.2.7]}}]}"), headers: xff), 200, "gateway: the peer")
        XCTAssertEqual(try status(allow("{from: [{source: {remoteIpBlocks: [198.51.100.4]}}]}"), headers: xff), 403, "gateway: XFF is not trusted")
        XCTAssertEqual(try status(allow("{from: [{source: {ipBlocks: [\"2001:db8::/32\"]}}]}")), 403)
    }

    func testSourceFieldsAreAndedAndSourcesOred() throws {
        let p = "cluster.local/ns/foo/sa/sleep"
        XCTAssertEqual(try status(allow("{from: [{source: {namespaces: [foo], ipBlocks: [10.0.0.0/8]}}]}"), principal: p), 403)
        XCTAssertEqual(try status(allow("{from: [{source: {namespaces: [bar]}}, {source: {ipBlocks: [192.0.2.0/24]}}]}"), principal: p), 200)
    }

    // MARK: operation

    func testHostsArePatternsWithoutCaseAndWithOrWithoutPort() throws {
        // The harness's authority is example.com.
        XCTAssertEqual(try status(allow("{to: [{operation: {hosts: [EXAMPLE.com]}}]}")), 200)
        XCTAssertEqual(try status(allow("{to: [{operation: {hosts: [\"*.com\"]}}]}")), 200)
        XCTAssertEqual(try status(allow("{to: [{operation: {hosts: [\"example.*\"]}}]}")), 200)
        XCTAssertEqual(try status(allow("{to: [{operation: {hosts: [other.com]}}]}")), 403)
        XCTAssertEqual(try status(allow("{to: [{operation: {notHosts: [example.com]}}]}")), 403)
        XCTAssertEqual(RBACRequest.hostWithoutPort("example.com:8080"), "example.com")
        XCTAssertEqual(RBACRequest.hostWithoutPort("[::1]:8080"), "[::1]")
    }

    func testPortsAreTheWorkloadPort() throws {
        // Without destinationPort: the listener's own port (the harness's local 8080).
        XCTAssertEqual(try status(allow("{to: [{operation: {ports: [\"8080\"]}}]}")), 200)
        XCTAssertEqual(try status(allow("{to: [{operation: {ports: [\"9090\"]}}]}"), extra: "destinationPort: 9090, "), 200)
        XCTAssertEqual(try status(allow("{to: [{operation: {ports: [\"8080\"]}}]}"), extra: "destinationPort: 9090, "), 403)
        XCTAssertEqual(try status(allow("{to: [{operation: {notPorts: [\"8080\"]}}]}")), 403)
    }

    func testMethodsAndPaths() throws {
        XCTAssertEqual(try status(allow("{to: [{operation: {methods: [GET, HEAD]}}]}"), method: "HEAD"), 200)
        XCTAssertEqual(try status(allow("{to: [{operation: {methods: [GET]}}]}"), method: "POST"), 403)
        XCTAssertEqual(try status(allow("{to: [{operation: {notMethods: [DELETE]}}]}"), method: "DELETE"), 403)
        XCTAssertEqual(try status(allow("{to: [{operation: {paths: [/info]}}]}"), path: "/info?x=1"), 200, "the query is not part of the path")
        XCTAssertEqual(try status(allow("{to: [{operation: {paths: [/info]}}]}"), path: "/info/x"), 403)
        XCTAssertEqual(try status(allow("{to: [{operation: {paths: [/api/*]}}]}"), path: "/api/v1"), 200)
        XCTAssertEqual(try status(allow("{to: [{operation: {paths: [\"*.png\"]}}]}"), path: "/img/a.png"), 200)
        XCTAssertEqual(try status(allow("{to: [{operation: {paths: [\"*\"]}}]}"), path: "/anything"), 200)
        XCTAssertEqual(try status(allow("{to: [{operation: {notPaths: [/private*]}}]}"), path: "/private/x"), 403)
        XCTAssertEqual(try status(allow("{to: [{operation: {methods: [GET], paths: [/a]}}]}"), method: "GET", path: "/b"), 403)
    }

    // MARK: when

    func testHeaderConditions() throws {
        let rule = "{when: [{key: \"request.headers[x-token]\", values: [\"admin\", \"ops-*\"]}]}"
        XCTAssertEqual(try status(allow(rule), headers: [("X-Token", "ops-7")]), 200)
        XCTAssertEqual(try status(allow(rule), headers: [("x-token", "guest")]), 403)
        XCTAssertEqual(try status(allow(rule)), 403)
        let not = "{when: [{key: \"request.headers[x-token]\", notValues: [\"guest\"]}]}"
        XCTAssertEqual(try status(allow(not)), 200, "an absent header is not a listed value")
        XCTAssertEqual(try status(allow(not), headers: [("x-token", "guest")]), 403)
        let present = "{when: [{key: \"request.headers[x-token]\", values: [\"*\"]}]}"
        XCTAssertEqual(try status(allow(present), headers: [("x-token", "")]), 200)
        XCTAssertEqual(try status(allow(present)), 403)
    }

    func testConnectionConditions() throws {
        let p = "cluster.local/ns/foo/sa/sleep"
        XCTAssertEqual(try status(allow("{when: [{key: source.ip, values: [192.0.2.0/24]}]}")), 200)
        XCTAssertEqual(try status(allow("{when: [{key: source.ip, notValues: [192.0.2.0/24]}]}")), 403)
        XCTAssertEqual(try status(allow("{when: [{key: remote.ip, values: [203.0.113.9]}]}"),
                                  headers: [("x-forwarded-for", "203.0.113.9,192.0.2.7")], extra: "remoteFromForwardedFor: true, "), 200)
        XCTAssertEqual(try status(allow("{when: [{key: source.namespace, values: [foo]}]}"), principal: p), 200)
        XCTAssertEqual(try status(allow("{when: [{key: source.principal, values: [\"*/ns/foo/sa/sleep\"]}]}"), principal: p), 200)
        XCTAssertEqual(try status(allow("{when: [{key: source.principal, values: [\"*\"]}]}")), 403)
        XCTAssertEqual(try status(allow("{when: [{key: destination.ip, values: [10.1.1.0/24]}]}")), 200)
        XCTAssertEqual(try status(allow("{when: [{key: destination.port, values: [\"8080\"]}]}")), 200)
        XCTAssertEqual(try status(allow("{when: [{key: destination.port, notValues: [\"8080\"]}]}")), 403)
        XCTAssertEqual(try status(allow("{when: [{key: connection.sni, values: [\"*.example.com\"]}]}"), sni: "api.example.com"), 200)
        XCTAssertEqual(try status(allow("{when: [{key: connection.sni, values: [\"*.example.com\"]}]}")), 403)
    }

    func testWhenConditionsAreAnded() throws {
        let rule = "{when: [{key: source.ip, values: [192.0.2.7]}, {key: \"request.headers[x-a]\", values: [\"1\"]}]}"
        XCTAssertEqual(try status(allow(rule), headers: [("x-a", "1")]), 200)
        XCTAssertEqual(try status(allow(rule)), 403)
    }

    // MARK: config

    func testConfigErrorsNameTheField() throws {
        XCTAssertThrowsError(try harness("{name: meshd.rbac, config: {policies: [{action: MAYBE}]}}")) {
            XCTAssertTrue("\($0)".contains("policies[0].action"), "\($0)")
        }
        XCTAssertThrowsError(try harness("{name: meshd.rbac, config: {policies: [{rules: [{when: [{key: request.size, values: [\"1\"]}]}]}]}}")) {
            XCTAssertTrue("\($0)".contains("when[0].key"), "\($0)")
        }
        XCTAssertThrowsError(try harness("{name: meshd.rbac, config: {policies: [{rules: [{from: [{source: {ipBlocks: [nope]}}]}]}]}}")) {
            XCTAssertTrue("\($0)".contains("ipBlocks[0]"), "\($0)")
        }
        XCTAssertThrowsError(try harness("{name: meshd.rbac, config: {policies: [{rules: [{to: [{operation: {ports: [http]}}]}]}]}}"))
    }

    func testIPBlockParsing() {
        XCTAssertTrue(IPBlock("10.0.0.0/8")!.contains("10.200.3.4"))
        XCTAssertFalse(IPBlock("10.0.0.0/8")!.contains("11.0.0.1"))
        XCTAssertTrue(IPBlock("2001:db8::/32")!.contains("2001:db8:1::5"))
        XCTAssertFalse(IPBlock("2001:db8::/32")!.contains("2001:db9::5"))
        XCTAssertTrue(IPBlock("::ffff:10.0.0.1")!.contains("::ffff:10.0.0.1"))
        XCTAssertTrue(IPBlock("0.0.0.0/0")!.contains("8.8.8.8"))
        XCTAssertFalse(IPBlock("10.0.0.0/8")!.contains("::1"))
        XCTAssertNil(IPBlock("10.0.0.0/33"))
        XCTAssertNil(IPBlock("10.0.0"))
        XCTAssertNil(IPBlock("1::2::3"))
    }
}
