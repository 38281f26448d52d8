import ArgumentParser
import FilterHost
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import NIOHTTP1
import Transport
import LuaRuntime
import PluginTesting

struct PluginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin",
        abstract: "Work with Lua plugins.",
        subcommands: [PluginTestCommand.self]
    )
}

struct PluginTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run a Lua plugin offline against a described request and upstream response.",
        discussion: """
        FILE is the plugin's Lua code, or a YAML file (.yaml, .yml) with a LuaPlugin \
        (extensions.meshd.io/v1alpha1) or a TrafficExtension (extensions.istio.io/v1alpha1, lua.inlineCode). \
        A resource is read and validated as the control plane reads it (`file:` relative to the YAML file; a url \
        other than file:// cannot be fetched offline) and runs with its pluginConfig, failStrategy and limits, \
        under the name the proxy gives it (NAMESPACE.NAME); a CONFIG file overrides them. A file with several \
        plugins needs --name.

        Nothing touches the network. The request goes through the plugin's envoy_on_request as the proxy \
        would run it (same Lua runtime, sandbox, limits and filter engine; the proxy's standard headers \
        x-forwarded-for, x-forwarded-proto and x-request-id are added first). If it reaches the upstream, \
        the described response comes back through envoy_on_response. Printed, in sections: the request \
        as it reaches the upstream, the response as it reaches the client, a local reply (respond(), or \
        a 500 under FAIL_CLOSE, 503 when a limit ended the run), every line the script logged with its level, dynamic metadata, \
        httpCall()s, clearRouteCache() calls and script errors.

        REQUEST file (YAML; every field is optional; without --request: GET / with no body):
          method: POST                  # default GET
          path: /api/items?x=1          # default /
          authority: api.example.com    # default localhost, or a Host header
          protocol: HTTP/1.1            # HTTP/1.0, HTTP/1.1 or HTTP/2
          headers: {x-api-key: k1, accept: [a, b]}  # or [[name, value], ...]
          body: '{"a": 1}'              # a string, or a list of chunks
          trailers: {x-checksum: abc}

        RESPONSE file (YAML; default: 200, no headers, empty body):
          status: 200
          headers: {content-type: application/json}
          body: '{"password": "x"}'
          trailers: {grpc-status: "0"}

        CONFIG file (YAML; a meshd.lua filter config without inlineCode; overrides a resource's settings):
          name: my-plugin               # default: the file name without .lua, or NAMESPACE.NAME
          failStrategy: FAIL_OPEN       # FAIL_CLOSE: a script error answers 500, a limit 503
          limits: {instructions: 10000000, memoryBytes: 16777216, maxRunMs: 100}
          pluginConfig: {any: value}    # handle:filterContext()
          modules: {lib.util: "return {}"}  # what require() may load
          route: {name: default, metadata: {team: blue}}
          downstream:                   # what streamInfo() reports
            remoteAddress: 127.0.0.1:51000
            localAddress: 127.0.0.1:8080
            tls: false
            serverName: api.example.com
          bufferLimitBytes: 1048576     # a larger buffered body gets 413

        Offline, httpCall() has no cluster to reach: every call is listed and answered at once like a \
        failed call, a 503 with body "upstream failure" (an asynchronous call returns nothing). \
        clearRouteCache() is counted; there is no route table, so the route stays the configured one.

        Exit status: 0 when the plugin ran without error; 1 on a script error (compile error, top-level \
        or handler error, exceeded limits), when the plugin never released the request or response, or \
        when the request or response it printed is not a valid HTTP message (content-length against the \
        body, header names and values, a body on a 204/304 or HEAD response); 2 when an input file cannot \
        be read or is invalid (for a plugin resource: whatever `meshd validate` refuses, a Lua syntax error \
        included).
        """
    )

    @Argument(help: "The plugin: a Lua file, or a YAML file with a LuaPlugin or TrafficExtension.")
    var file: String

    @Option(name: .long, help: "Which plugin of a YAML file: NAME, NAMESPACE/NAME or KIND/NAMESPACE/NAME.")
    var name: String?

    @Option(name: .long, help: "The request, as YAML (see above; default: GET / with no body).")
    var request: String?

    @Option(name: .long, help: "The upstream's response, as YAML (default: 200 with an empty body).")
    var response: String?

    @Option(name: .long, help: "pluginConfig, failStrategy, limits, route and downstream, as YAML.")
    var config: String?

    func run() throws {
        let plugin = try loadPlugin()
        let requestInput = try request.map { path in
            try parse(path) { try PluginTestInput.request(yaml: $0, file: path) }
        } ?? PluginTestRequest()
        let responseInput = try response.map { path in
            try parse(path) { try PluginTestInput.response(yaml: $0, file: path) }
        } ?? PluginTestResponse()
        let settings = try config.map { path in
            try parse(path) { try PluginTestInput.config(yaml: $0, file: path, base: plugin.settings) }
        } ?? plugin.settings
        for w in settings.warnings { fail("warning: \(w)") }

        let runner: PluginTestRunner
        do {
            runner = try PluginTestRunner(source: plugin.source, name: plugin.name, config: settings)
        } catch let e as LuaCompileError {
            fail("\(plugin.origin): \(e.description)")
            throw ExitCode(1)
        } catch let e as ConfigError {
            fail("invalid config: \(e.description)")
            throw ExitCode(2)
        }
        let result: PluginTestResult
        do {
            result = try runner.run(request: requestInput, response: responseInput)
        } catch let e as ConfigError {
            fail("invalid config: \(e.description)")
            throw ExitCode(2)
        }
        PluginTestReport.print(result, plugin: runner.plugin, origin: plugin.origin)
        if !result.succeeded { throw ExitCode(1) }
    }

    private func loadPlugin() throws -> PluginUnderTest {
        guard PluginUnderTest.isResourceFile(file) else {
            if name != nil {
                fail("--name picks a plugin of a YAML file; \(file) is read as Lua")
                throw ExitCode(2)
            }
            let base = file.split(separator: "/").last.map(String.init) ?? file
            let name = base.lastIndex(of: ".").map { String(base[..<$0]) }.flatMap { $0.isEmpty ? nil : $0 } ?? base
            return PluginUnderTest(source: try read(file), name: name, origin: file)
        }
        guard FileManager.default.isReadableFile(atPath: file) else {
            _ = try read(file)  // says why
            throw ExitCode(2)
        }
        do {
            return try PluginUnderTest.resource(file, wanted: name)
        } catch {
            for m in error.messages { fail(m) }
            throw ExitCode(2)
        }
    }

    private func read(_ path: String) throws -> String {
        do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
            fail("cannot read \(path): \(error.plainDescription)")
            throw ExitCode(2)
        }
    }

    private func parse<T>(_ path: String, _ body: (String) throws -> T) throws -> T {
        let text = try read(path)
        do { return try body(text) } catch let e as ConfigError {
            fail("invalid input: \(e.description)")
            throw ExitCode(2)
        }
    }

    private func fail(_ message: String) {
        StandardError.write(message + "\n")
    }
}

/// Prints a run's result in sections.
enum PluginTestReport {
    static func print(_ r: PluginTestResult, plugin: LuaPluginConfig, origin: String) {
        out("plugin: \(plugin.name) (\(origin)), failStrategy \(plugin.failStrategy.rawValue)")

        section("request to upstream")
        if let up = r.upstreamRequest {
            let h = up.head
            out(":method: \(h.method)\n:path: \(h.path)\n:authority: \(h.authority)\n:scheme: \(h.scheme)")
            headers(h.headers)
            body(up.body)
            if let t = up.trailers { out("trailers:"); headers(t, indent: "  ") }
            if !up.complete { out("(incomplete: the end of the request never got there)") }
        } else {
            out(r.localReply != nil ? "(none: the request was answered locally)" : "(none)")
        }

        if let reply = r.localReply {
            section("local reply")
            let by: String
            switch reply.origin {
            case .respond: by = "sent by the script's respond()"
            case .failClose: by = "the script failed and failStrategy is FAIL_CLOSE"
            case .bufferLimit: by = "a buffered body outgrew the buffer limit"
            }
            out("\(reply.status) \(reason(reply.status)): \(by)" + (r.upstreamRequest == nil ? "; the upstream was not called" : ""))
        }

        section("response to client")
        if let resp = r.response {
            out(":status: \(resp.head.status)" + (resp.head.reason.map { " (reason phrase \"\($0)\")" } ?? ""))
            headers(resp.head.headers)
            body(resp.body)
            if let t = resp.trailers { out("trailers:"); headers(t, indent: "  ") }
            if !resp.complete { out("(incomplete: the end of the response never got there)") }
        } else {
            out("(none)")
        }

        section("logs (\(r.logs.count))")
        for line in r.logs { out("[\(line.level.rawValue)] \(line.message)") }

        section("dynamic metadata")
        if r.dynamicMetadata.isEmpty { out("(none)") }
        for ns in r.dynamicMetadata.keys.sorted() {
            out("\(ns):")
            for (k, v) in r.dynamicMetadata[ns]!.sorted(by: { $0.key < $1.key }) { out("  \(k): \(text(v))") }
        }

        if !r.httpCalls.isEmpty {
            section("httpCall (offline: each answered 503 \"upstream failure\")")
            for c in r.httpCalls {
                out("\(c.cluster): \(c.method) \(c.authority)\(c.path)" + (c.asynchronous ? " (asynchronous)" : ""))
            }
        }
        if r.routeCacheClears > 0 {
            section("route")
            out("clearRouteCache() called \(r.routeCacheClears) time(s) (offline the route does not change)")
        }

        if !r.errors.isEmpty || !r.stalls.isEmpty || !r.invalid.isEmpty {
            section("errors")
            for e in r.errors { out("\(e.phase): \(e.message)") }
            for s in r.stalls { out(s) }
            for i in r.invalid { out(i) }
        }
        out("")
        out(r.succeeded ? "result: ok" : "result: FAILED")
    }

    /// A metadata value: a string as it is, anything else as JSON (numbers, booleans, tables).
    private static func text(_ value: JSONValue) -> String {
        if let s = value.stringValue { return s }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    private static func section(_ title: String) {
        out("\n== \(title)")
    }

    private static func headers(_ h: HTTPHeaders, indent: String = "") {
        for (name, value) in h { out("\(indent)\(name): \(value)") }
    }

    private static func body(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return out("(no body)") }
        out("")
        if let text = String(validating: bytes, as: UTF8.self) {
            out(text.hasSuffix("\n") ? String(text.dropLast()) : text)
        } else {
            out("(\(bytes.count) bytes, not UTF-8; base64) \(Data(bytes).base64EncodedString())")
        }
    }

    private static func reason(_ status: Int) -> String {
        HTTPResponseStatus(statusCode: status).reasonPhrase
    }

    private static func out(_ s: String) {
        Swift.print(s)
    }
}
