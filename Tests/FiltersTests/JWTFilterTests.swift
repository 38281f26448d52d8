@testable import FilterHost
@testable import Filters
import Foundation
import MeshAPI
import NIOEmbedded
import Transport
import XCTest

/// RequestAuthentication through `meshd.jwt_authn` (and `meshd.rbac` after it): keys and
/// tokens are made here with OpenSSL.
final class JWTFilterTests: XCTestCase {
    let loop = EmbeddedEventLoop()
    static let rsa = TestSigningKey(.rsa)
    static let issuer = "https://issuer.example"
    var now: Int { Int(Date().timeIntervalSince1970) }

    func claims(_ extra: [String: Any] = [:]) -> [String: Any] {
        var c: [String: Any] = ["iss": Self.issuer, "sub": "alice", "exp": now + 600]
        c.merge(extra) { _, new in new }
        return c
    }

    /// A stream with a jwt_authn filter of one provider (extra YAML fields for it) and, when
    /// given, an rbac filter after it.
    func harness(_ provider: String = "", jwks: String? = nil, rbac: String? = nil) throws -> ChainHarness {
        let jwksText = (jwks ?? Self.rsa.jwks).replacingOccurrences(of: "'", with: "''")
        var filters = "{name: meshd.jwt_authn, config: {providers: [{issuer: \"\(Self.issuer)\", jwks: '\(jwksText)'\(provider)}]}}"
        if let rbac { filters += ", {name: meshd.rbac, config: {policies: \(rbac)}}" }
        let snapshot = try buildSnapshot("""
        listeners: [{name: main, address: 127.0.0.1, port: 8080, routeConfig: rc, httpFilters: [\(filters)]}]
        clusters: [{name: c, endpoints: [{address: 127.0.0.1, port: 9}]}]
        routeConfigs: [{name: rc, virtualHosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: c}}]}]}]
        """)
        return try ChainHarness(eventLoop: loop, factories: snapshot.filterChains["main"]!, bootstrap: snapshot.bootstrap)
    }

    func send(_ token: String?, _ s: ChainHarness? = nil, path: String = "/") throws -> ChainHarness {
        let s = try s ?? harness()
        s.sendRequest(path: path, headers: token.map { [("authorization", "Bearer " + $0)] } ?? [])
        return s
    }

    func assertRefused(_ s: ChainHarness, _ body: String, status: Int = 401, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(s.localReply?.status, status, file: file, line: line)
        XCTAssertEqual(s.localReply?.body, body, file: file, line: line)
        XCTAssertNil(s.upstreamHead, file: file, line: line)
    }

    // MARK: verification

    func testAValidTokenPassesWithItsPayloadInMetadataAndIsNotForwarded() throws {
        let s = try send(Self.rsa.token(claims()))
        XCTAssertNil(s.localReply)
        XCTAssertNotNil(s.upstreamHead)
        XCTAssertNil(s.upstream("authorization"), "forwardOriginalToken defaults to false")
        XCTAssertEqual(s.streamInfo.dynamicMetadata[JWTConfig.metadataNamespace]?[Self.issuer]?["sub"], .string("alice"))
        XCTAssertEqual(s.counters.values["meshd_jwt_authn_allowed_total"], 1)
    }

    func testEveryAlgorithm() throws {
        for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
            let s = try send(Self.rsa.token(claims(), alg: alg))
            XCTAssertNil(s.localReply, alg)
            XCTAssertNotNil(s.upstreamHead, alg)
        }
        for key in [TestSigningKey(.p256), TestSigningKey(.p384)] {
            let s = try send(key.token(claims()), harness(jwks: key.jwks))
            XCTAssertNil(s.localReply, "\(key.kind)")
            XCTAssertNotNil(s.upstreamHead)
        }
    }

    func testNoTokenPassesUnauthenticated() throws {
        let s = try send(nil)
        XCTAssertNil(s.localReply)
        XCTAssertNotNil(s.upstreamHead)
        XCTAssertNil(s.streamInfo.dynamicMetadata[JWTConfig.metadataNamespace])
    }

    func testATamperedTokenIsRefusedWithEnvoysAnswer() throws {
        let parts = Self.rsa.token(claims()).split(separator: ".").map(String.init)
        let forged = Base64URL.encode(Array(#"{"exp":9999999999,"iss":"https://issuer.example","sub":"admin"}"#.utf8))
        let s = try send([parts[0], forged, parts[2]].joined(separator: "."))
        assertRefused(s, "Jwt verification fails")
        XCTAssertEqual(s.localReply?.headers.first(name: "www-authenticate"),
                       "Bearer realm=\"http://example.com/\", error=\"invalid_token\"")
        XCTAssertEqual(s.counters.values["meshd_jwt_authn_denied_total"], 1)
    }

    func testATokenSignedByAnotherKeyIsRefused() throws {
        let other = TestSigningKey(.rsa)
        assertRefused(try send(other.token(claims())), "Jwt verification fails")
    }

    func testAlgNoneAndHMACAreRefused() throws {
        assertRefused(try send(TestSigningKey.unsigned(claims())), "Jwt header [alg] field value is invalid")
        let hs = Self.rsa.token(claims(), alg: "RS256").split(separator: ".").map(String.init)
        let header = Base64URL.encode(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        assertRefused(try send([header, hs[1], hs[2]].joined(separator: ".")), "Jwt header [alg] field value is invalid")
    }

    func testTimeLimits() throws {
        assertRefused(try send(Self.rsa.token(claims(["exp": now - 120]))), "Jwt is expired")
        assertRefused(try send(Self.rsa.token(claims(["nbf": now + 600]))), "Jwt not yet valid")
        // Within Envoy's 60 s of clock skew.
        XCTAssertNil(try send(Self.rsa.token(claims(["exp": now - 10]))).localReply)
    }

    func testIssuerAndAudiences() throws {
        assertRefused(try send(Self.rsa.token(claims(["iss": "https://other.example"]))), "Jwt issuer is not configured")
        let h = try harness(", audiences: [api, web]")
        XCTAssertNil(try send(Self.rsa.token(claims(["aud": ["x", "web"]])), h).localReply)
        // Envoy answers a wrong audience with 403.
        assertRefused(try send(Self.rsa.token(claims(["aud": "other"])), harness(", audiences: [api]")),
                      "Audiences in Jwt are not allowed", status: 403)
        assertRefused(try send(Self.rsa.token(claims()), harness(", audiences: [api]")),
                      "Audiences in Jwt are not allowed", status: 403)
    }

    func testMalformedTokens() throws {
        assertRefused(try send("abc.def"), "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections")
        assertRefused(try send("!!.e30.sig"), "Jwt header is an invalid JSON")
    }

    func testNoKeysMeansNoTokenVerifies() throws {
        let s = try harness("", jwks: "not json")
        assertRefused(try send(Self.rsa.token(claims()), s), "Jwks remote fetch is failed")
    }

    // MARK: locations and outputs

    func testFromHeadersParamsAndCookies() throws {
        let token = Self.rsa.token(claims())
        let h = try harness(", fromHeaders: [{name: x-jwt, prefix: \"Token \"}], fromParams: [tk], fromCookies: [session]")
        h.sendRequest(headers: [("x-jwt", "Token " + token)])
        XCTAssertNotNil(h.upstreamHead)
        XCTAssertNil(h.upstream("x-jwt"))
        XCTAssertNotNil(h.streamInfo.dynamicMetadata[JWTConfig.metadataNamespace])

        let p = try harness(", fromParams: [tk]")
        p.sendRequest(path: "/x?a=1&tk=\(token)")
        XCTAssertNotNil(p.streamInfo.dynamicMetadata[JWTConfig.metadataNamespace])

        let c = try harness(", fromCookies: [session]")
        c.sendRequest(headers: [("cookie", "a=b; session=\(token)")])
        XCTAssertNotNil(c.streamInfo.dynamicMetadata[JWTConfig.metadataNamespace])

        // A configured location replaces the defaults.
        let d = try harness(", fromCookies: [session]")
        d.sendRequest(headers: [("authorization", "Bearer " + token)])
        XCTAssertNil(d.streamInfo.dynamicMetadata[JWTConfig.metadataNamespace])

        let bad = try harness(", fromParams: [tk]")
        bad.sendRequest(path: "/x?tk=garbage.x.y")
        XCTAssertEqual(bad.localReply?.status, 401)
    }

    func testDefaultLocationsIncludeAccessTokenParam() throws {
        let s = try harness()
        s.sendRequest(path: "/?access_token=" + Self.rsa.token(claims()))
        XCTAssertNotNil(s.streamInfo.dynamicMetadata[JWTConfig.metadataNamespace])
    }

    func testForwardOriginalTokenAndOutputs() throws {
        let token = Self.rsa.token(claims(["org": ["team": "core"], "admin": true, "level": 3]))
        let s = try send(token, harness(", forwardOriginalToken: true, outputPayloadToHeader: x-payload, outputClaimToHeaders: [{header: x-sub, claim: sub}, {header: x-team, claim: org.team}, {header: x-admin, claim: admin}, {header: x-level, claim: level}, {header: x-none, claim: missing}]"))
        XCTAssertEqual(s.upstream("authorization"), "Bearer " + token)
        XCTAssertEqual(s.upstream("x-payload"), String(token.split(separator: ".")[1]))
        XCTAssertEqual(s.upstream("x-sub"), "alice")
        XCTAssertEqual(s.upstream("x-team"), "core")
        XCTAssertEqual(s.upstream("x-admin"), "true")
        XCTAssertEqual(s.upstream("x-level"), "3")
        XCTAssertNil(s.upstream("x-none"))
    }

    // MARK: with authorization

    func testRequestPrincipalsAndAuthConditions() throws {
        let requireJWT = "[{name: ns.require, action: ALLOW, rules: [{from: [{source: {requestPrincipals: [\"*\"]}}]}]}]"
        XCTAssertEqual(try send(nil, harness(rbac: requireJWT)).localReply?.status, 403, "no token: authorization decides")
        XCTAssertNil(try send(Self.rsa.token(claims()), harness(rbac: requireJWT)).localReply)

        let exact = "[{name: ns.p, action: ALLOW, rules: [{from: [{source: {requestPrincipals: [\"https://issuer.example/alice\"]}}]}]}]"
        XCTAssertNil(try send(Self.rsa.token(claims()), harness(rbac: exact)).localReply)
        XCTAssertEqual(try send(Self.rsa.token(claims(["sub": "bob"])), harness(rbac: exact)).localReply?.status, 403)

        let notRP = "[{name: ns.d, action: DENY, rules: [{from: [{source: {notRequestPrincipals: [\"*\"]}}]}]}]"
        XCTAssertEqual(try send(nil, harness(rbac: notRP)).localReply?.status, 403)
        XCTAssertNil(try send(Self.rsa.token(claims()), harness(rbac: notRP)).localReply)

        func when(_ key: String, _ values: String, _ extra: [String: Any], not: Bool = false) throws -> Int {
            let rule = "[{name: ns.w, action: ALLOW, rules: [{when: [{key: \"\(key)\", \(not ? "notValues" : "values"): \(values)}]}]}]"
            return try send(Self.rsa.token(claims(extra)), harness(rbac: rule)).localReply?.status ?? 200
        }
        XCTAssertEqual(try when("request.auth.principal", "[\"*/alice\"]", [:]), 200)
        XCTAssertEqual(try when("request.auth.audiences", "[api]", ["aud": ["api", "x"]]), 200)
        XCTAssertEqual(try when("request.auth.audiences", "[api]", ["aud": "web"]), 403)
        XCTAssertEqual(try when("request.auth.presenter", "[frontend]", ["azp": "frontend"]), 200)
        XCTAssertEqual(try when("request.auth.claims[groups]", "[admins]", ["groups": ["dev", "admins"]]), 200)
        XCTAssertEqual(try when("request.auth.claims[groups]", "[admins]", ["groups": ["dev"]]), 403)
        XCTAssertEqual(try when("request.auth.claims[org][team]", "[\"co*\"]", ["org": ["team": "core"]]), 200)
        XCTAssertEqual(try when("request.auth.claims[org][team]", "[core]", ["org": ["team": "core"]], not: true), 403)
    }

    func testJWKSParsing() throws {
        XCTAssertThrowsError(try JWKS.parse("{}"))
        XCTAssertThrowsError(try JWKS.parse(#"{"keys":[{"kty":"oct","k":"abc"}]}"#))
        XCTAssertThrowsError(try JWKS.parse(#"{"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]}"#))
        XCTAssertEqual(try JWKS.parse(Self.rsa.jwks).count, 1)
        XCTAssertEqual(Base64URL.decode("AQAB"), [1, 0, 1])
        XCTAssertNil(Base64URL.decode("A"))
    }
}
