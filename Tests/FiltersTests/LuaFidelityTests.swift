@testable import FilterHost
import MeshAPI
import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest
import Transport
@testable import LuaRuntime
@testable import Filters
@testable import PluginTesting

/// Envoy's documented and tested Lua behaviours, one by one (issue "Envoy Lua fidelity").
final class LuaFidelityTests: XCTestCase {
    let loop = EmbeddedEventLoop()

    private func stream(_ code: String, config: [String: JSONValue] = [:]) throws -> (ChainHarness, LuaVM) {
        var c: [String: JSONValue] = ["name": .string("test"), "inlineCode": .string(code)]
        c.merge(config) { $1 }
        let factory = try LuaFilterFactory.build(.object(c)) as! LuaFilterFactory
        return (try ChainHarness(eventLoop: loop, factories: [factory]), LuaTest.vm(factory, loop))
    }

    // MARK: pairs() over Envoy's objects

    func testPairsOverHeadersMetadataAndDynamicMetadataWithLowerCaseNames() throws {
        let (s, vm) = try stream("""
        function envoy_on_request(h)
          local seen = {}
          for k, v in pairs(h:headers()) do seen[#seen + 1] = k .. "=" .. v end
          local md = {}
          for k, v in pairs(h:metadata()) do md[#md + 1] = k .. "=" .. tostring(v) end
          h:streamInfo():dynamicMetadata():set("ns", "k", "v")
          local dyn = {}
          for ns, t in pairs(h:streamInfo():dynamicMetadata()) do dyn[#dyn + 1] = ns .. "." .. t.k end
          h:headers():add("x-seen", table.concat(seen, ";"))
          h:headers():add("x-md", table.concat(md, ";"))
          h:headers():add("x-dyn", table.concat(dyn, ";"))
        end
        """)
        s.route = try route(metadata: ["team": .string("blue")])
        s.sendRequest(headers: [("X-Mixed-Case", "1")])
        XCTAssertNil(vm.lastError)
        XCTAssertEqual(s.upstream("x-seen"), ":authority=example.com;:path=/;:method=GET;:scheme=http;x-mixed-case=1")
        XCTAssertEqual(s.upstream("x-md"), "team=blue")
        XCTAssertEqual(s.upstream("x-dyn"), "ns.v")
    }

    func testSecondHeaderIteratorBeforeTheFirstEndsRaisesEnvoysError() throws {
        let (s, vm) = try stream("""
        function envoy_on_request(h)
          for k in pairs(h:headers()) do
            for k2 in pairs(h:headers()) do end
          end
        end
        """)
        s.sendRequest()
        XCTAssertEqual(vm.lastError, "cannot create a second iterator before completing the first")
    }

    // MARK: body(true) on a message without a body

    func testBodyMadeForAResponseWithoutOneGoesOutWithItsLength() throws {
        let (s, vm) = try stream("""
        function envoy_on_response(h) h:body(true):setBytes("ok") end
        """)
        s.sendRequest()
        s.sendResponse(status: 200, headers: [("content-length", "0")])
        loop.run()
        XCTAssertNil(vm.lastError)
        XCTAssertEqual(s.client("content-length"), "2")
        XCTAssertEqual(String(buffer: s.clientBody), "ok")
    }

    func testBodyMadeForARequestWithoutOneFollowsTheHeaders() throws {
        let (s, _) = try stream("""
        function envoy_on_request(h) h:body(true):setBytes("hello") end
        """)
        s.sendRequest(method: "POST")
        loop.run()
        XCTAssertEqual(s.upstream("content-length"), "5")
        XCTAssertEqual(s.upstreamBodyString, "hello")
        XCTAssertEqual(s.upstreamOrder, ["headers", "data:5:true"])
    }

    func testBodyMadeButLeftEmptyKeepsAHeadersOnlyMessage() throws {
        let (s, _) = try stream("""
        function envoy_on_request(h) h:headers():add("x-len", h:body(true):length()) end
        """)
        s.sendRequest()
        loop.run()
        XCTAssertEqual(s.upstream("x-len"), "0")
        XCTAssertEqual(s.upstreamOrder, ["headers"])
        XCTAssertTrue(s.upstreamEnded)
    }

    func testBodyMadeWhenOnlyTrailersCameGoesBeforeThem() throws {
        let (s, _) = try stream("""
        function envoy_on_request(h) h:body(true):setBytes("abc") end
        """)
        s.sendRequest(method: "POST", trailers: [("x-t", "1")])
        loop.run()
        XCTAssertEqual(s.upstreamOrder, ["headers", "data:3:false", "trailers"])
        XCTAssertEqual(s.upstreamBodyString, "abc")
    }

    // MARK: respond() after the headers went on

    func testRespondInsideBodyChunksRaisesAndTheRequestIsProxied() throws {
        let (s, vm) = try stream("""
        function envoy_on_request(h)
          for chunk in h:bodyChunks() do
            h:respond({[":status"] = "403"}, "nope")
          end
        end
        """)
        s.sendRequest(method: "POST", body: ["abc", "def"])
        XCTAssertEqual(vm.lastError, "respond() cannot be called if headers have been continued")
        XCTAssertNil(s.localReply)
        XCTAssertEqual(s.upstreamBodyString, "abcdef")
        XCTAssertTrue(s.upstreamEnded)
    }

    // MARK: dynamic metadata with types

    func testDynamicMetadataKeepsTablesNumbersAndBooleans() throws {
        let (s, vm) = try stream("""
        function envoy_on_request(h)
          local md = h:streamInfo():dynamicMetadata()
          md:set("envoy.filters.http.lua", "request.info", {auth = "Bearer x", n = 3, ok = true, list = {"a", "b"}})
          md:set("envoy.filters.http.lua", "count", 7)
          md:set("envoy.filters.http.lua", "ratio", 0.5)
          md:set("envoy.filters.http.lua", "flag", false)
        end
        function envoy_on_response(h)
          local t = h:streamInfo():dynamicMetadata():get("envoy.filters.http.lua")
          local info = t["request.info"]
          h:headers():add("x-types", type(info) .. "," .. math.type(info.n) .. "," .. type(info.ok) .. "," ..
            math.type(t.count) .. "," .. math.type(t.ratio) .. "," .. tostring(t.flag) .. "," .. #info.list)
          h:headers():add("x-values", info.auth .. "," .. info.n .. "," .. info.list[2] .. "," .. t.count .. "," .. t.ratio)
        end
        """)
        s.sendRequest()
        XCTAssertNil(vm.lastError)
        let values = s.streamInfo.dynamicMetadata["envoy.filters.http.lua"]
        XCTAssertEqual(values?["request.info"], .object(["auth": .string("Bearer x"), "n": .number(3), "ok": .bool(true),
                                                         "list": .array([.string("a"), .string("b")])]))
        XCTAssertEqual(values?["count"], .number(7))
        XCTAssertEqual(values?["flag"], .bool(false))
        s.sendResponse()
        XCTAssertNil(vm.lastError)
        XCTAssertEqual(s.client("x-types"), "table,integer,boolean,integer,float,false,2")
        XCTAssertEqual(s.client("x-values"), "Bearer x,3,b,7,0.5")
    }

    func testDynamicMetadataRefusesFunctions() throws {
        let (s, vm) = try stream("""
        function envoy_on_request(h) h:streamInfo():dynamicMetadata():set("ns", "k", {f = print}) end
        """)
        s.sendRequest()
        XCTAssertEqual(vm.lastError, "metadata value: cannot store a function")
    }

    // MARK: crypto and logging as Envoy has them

    func testImportPublicKeyGetVerifiesASignature() throws {
        let (s, vm) = try stream("""
        local der = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEGNKz/TKBkToVGjSi+b8IdJM3VHP5iWI9SpSuhV6cBiswrrfyii0hAM9XNL6T3iSSDdWiWivdPa1U2hJe1k61ow=="
        local sig = "MEUCIQCEsE4fxTWzUpUk96bESYRvENu8s0t+sM5nUn6LJQuNIwIgIXpGIUuxyVwxzxQU5TTglcUIi/Th0hPdi907Qp7vxcg="
        function envoy_on_request(h)
          local raw = h:base64Decode(der)
          local key = h:importPublicKey(raw, string.len(raw)):get()
          local signature = h:base64Decode(sig)
          local ok, err = h:verifySignature("SHA256", key, signature, #signature, "signed data", 11)
          local bad = h:verifySignature("SHA256", key, signature, #signature, "other data", 10)
          h:headers():add("x-verify", tostring(ok) .. ":" .. tostring(err) .. ":" .. tostring(bad))
          h:headers():add("x-bogus", tostring(h:importPublicKey("bogus", 5):get()))
          h:headers():add("x-b64", tostring(h:base64Decode("aGVsbG8")) .. ":" .. tostring(h:base64Decode("!!")))
          h:headers():add("x-ts", select(2, pcall(h.timestampString, h, "SECOND")))
        end
        """)
        s.sendRequest()
        XCTAssertNil(vm.lastError)
        XCTAssertEqual(s.upstream("x-verify"), "true:nil:false")
        XCTAssertEqual(s.upstream("x-bogus"), "nil")
        XCTAssertEqual(s.upstream("x-b64"), "hello:nil")
        XCTAssertEqual(s.upstream("x-ts"), "timestamp format must be MILLISECOND or MICROSECOND.")
    }

    func testLoggingANonStringRaisesLuasArgumentErrorAndEveryObjectLogs() throws {
        let (s, vm) = try stream("""
        function envoy_on_request(h)
          h:headers():logInfo("from headers")
          h:streamInfo():logDebug(42)
          local ok, err = pcall(h.logInfo, h, {})
          h:headers():add("x-err", err)
          h:logWarn(nil)
        end
        """)
        s.sendRequest()
        XCTAssertEqual(s.upstream("x-err"), "bad argument #1 to 'logInfo' (string expected, got table)")
        XCTAssertEqual(vm.lastError, "bad argument #1 to 'logWarn' (string expected, got nil)")
    }

    // MARK: require

    func testRequireLoadsThePluginsOwnModulesOnce() throws {
        let (s, vm) = try stream("""
        local util = require("lib.util")
        function envoy_on_request(h)
          h:headers():add("x-greet", util.greet("mesh"))
          h:headers():add("x-same", tostring(require("lib.util") == util) .. ":" .. loads)
          local ok, err = pcall(require, "lib.absent")
          h:headers():add("x-absent", err)
        end
        """, config: ["modules": .object(["lib.util": .string("""
        loads = (loads or 0) + 1
        local M = {}
        function M.greet(who) return "hello " .. who end
        return M
        """)])])
        s.sendRequest()
        XCTAssertNil(vm.lastError)
        XCTAssertEqual(s.upstream("x-greet"), "hello mesh")
        XCTAssertEqual(s.upstream("x-same"), "true:1")
        XCTAssertEqual(s.upstream("x-absent"), "module 'lib.absent' not found: meshd loads only the plugin's own modules")
    }

    func testModuleSyntaxErrorsAndBadNamesAreRefusedAtConfigTime() throws {
        func refusal(_ modules: JSONValue) -> ConfigError? {
            do {
                _ = try LuaFilterFactory.build(.object(["inlineCode": .string("x = 1"), "modules": modules]))
                return nil
            } catch { return error as? ConfigError }
        }
        let syntax = refusal(.object(["util": .string("return {")]))
        XCTAssertEqual(syntax?.path, "modules.util")
        XCTAssertTrue(syntax?.reason.contains("lua syntax error in util at line 1") ?? false, "\(String(describing: syntax))")
        XCTAssertEqual(refusal(.object(["../etc/passwd": .string("return 1")]))?.path, "modules.../etc/passwd")
        XCTAssertEqual(refusal(.string("util.lua"))?.path, "modules")
    }

    // MARK: route, virtual host, filter state, stream info

    func testRouteAndVirtualHostMetadata() throws {
        let (s, vm) = try stream("""
        function envoy_on_request(h)
          local r = h:route():metadata()
          local v = h:virtualHost():metadata()
          h:headers():add("x-route", tostring(r:get("team")) .. ":" .. tostring(h:metadata():get("team")))
          h:headers():add("x-vhost", tostring(v:get("zone")) .. ":" .. tostring(v:get("team")))
        end
        """)
        s.route = try route(metadata: ["team": .string("blue")], hostMetadata: ["zone": .string("eu")], key: "test")
        s.sendRequest()
        XCTAssertNil(vm.lastError)
        XCTAssertEqual(s.upstream("x-route"), "blue:blue")
        XCTAssertEqual(s.upstream("x-vhost"), "eu:nil")
    }

    func testFilterStateStreamInfoCallsAndDrain() throws {
        let (s, vm) = try stream("""
        function envoy_on_request(h)
          local si = h:streamInfo()
          local fs = si:filterState()
          h:headers():add("x-fs", tostring(fs:get("auth.token")) .. "," .. tostring(fs:get("absent")) .. "," ..
            tostring(fs:get("user.info", "name")) .. "," .. tostring(fs:get("user.info", "id")) .. "," .. fs:get("n"))
          h:headers():add("x-local", si:downstreamDirectLocalAddress())
          si:drainConnectionUponCompletion()
        end
        """)
        s.streamInfo.filterState = ["auth.token": .string("t0k"), "n": .number(12),
                                    "user.info": .object(["name": .string("alice"), "id": .number(1001)])]
        s.sendRequest()
        XCTAssertNil(vm.lastError)
        XCTAssertEqual(s.upstream("x-fs"), "t0k,nil,alice,1001,12")
        XCTAssertEqual(s.upstream("x-local"), "10.1.1.1:8080")
        XCTAssertTrue(s.drainRequested)
    }

    func testSSLObjectReportsThePeerCertificate() throws {
        let (s, vm) = try stream("""
        function envoy_on_request(h)
          local ssl = h:streamInfo():downstreamSslConnection()
          local name = ssl:parsedSubjectPeerCertificate()
          h:headers():add("x-ssl", table.concat({tostring(ssl:peerCertificatePresented()),
            tostring(ssl:peerCertificateValidated()), table.concat(ssl:uriSanPeerCertificate(), "|"),
            ssl:subjectPeerCertificate(), ssl:sha256PeerCertificateDigest(), ssl:serialNumberPeerCertificate(),
            ssl:tlsVersion(), ssl:ciphersuiteId(), tostring(ssl:expirationPeerCertificate()), name:commonName(),
            table.concat(name:organizationName(), "|"), table.concat(ssl:dnsSansLocalCertificate(), "|")}, ";"))
          h:headers():add("x-pem", ssl:urlEncodedPemEncodedPeerCertificate())
        end
        """)
        let peer = TLSCertificateFacts(der: [1, 2], pem: "-----BEGIN CERTIFICATE-----\nAB+/=\n-----END CERTIFICATE-----\n",
                                       subject: "CN=client,O=acme", subjectCommonName: "client",
                                       subjectOrganizations: ["acme"], issuer: "CN=ca", serialNumber: "1f",
                                       uriSANs: ["spiffe://cluster.local/ns/default/sa/client"], dnsSANs: [],
                                       sha256Digest: "abcd", validFrom: 100, expiration: 200)
        let local = TLSCertificateFacts(der: [], pem: "", subject: "CN=localhost", issuer: "CN=ca", serialNumber: "2",
                                        uriSANs: [], dnsSANs: ["localhost"], sha256Digest: "", validFrom: 0, expiration: 0)
        s.connectionInfo.isTLS = true
        s.connectionInfo.tls = TLSConnectionFacts(version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", cipherID: 0x1301,
                                                  peerCertificate: peer, peerCertificateValidated: true, localCertificate: local)
        s.sendRequest()
        XCTAssertNil(vm.lastError)
        XCTAssertEqual(s.upstream("x-ssl"), "true;true;spiffe://cluster.local/ns/default/sa/client;CN=client,O=acme;"
                       + "abcd;1f;TLSv1.3;0x1301;200;client;acme;localhost")
        XCTAssertEqual(s.upstream("x-pem"), "-----BEGIN%20CERTIFICATE-----%0AAB%2B%2F%3D%0A-----END%20CERTIFICATE-----%0A")
    }

    // MARK: helpers

    private func route(metadata: [String: JSONValue], hostMetadata: [String: JSONValue]? = nil,
                       key: String = LuaFilterFactory.name) throws -> SelectedRoute {
        let json: JSONValue = .object([
            "name": .string("r"), "match": .object(["prefix": .string("/")]),
            "route": .object(["cluster": .string("c")]),
            "perFilterConfig": .object([key: .object(["metadata": .object(metadata)])]),
        ])
        let decoded = try JSONDecoder().decode(Route.self, from: try JSONEncoder().encode(json))
        return SelectedRoute(virtualHost: "vh", compiled: try CompiledRoute(decoded, at: "r"),
                             hostFilterConfig: hostMetadata.map { [key: .object(["metadata": .object($0)])] })
    }
}
