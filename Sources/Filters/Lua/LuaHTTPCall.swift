import CLua
import MeshAPI
import NIOCore
import NIOHTTP1
import FilterHost
import Transport
import LuaRuntime

/// One `handle:httpCall()`: an `HTTPCallout` whose answer goes to the script. A synchronous
/// call hands the answer to the waiting script; an asynchronous one runs detached and its
/// answer is dropped. Any failure (no connection, reset, timeout, body over the limit)
/// answers the script with a made-up 503 and the body "upstream failure", as Envoy does.
package final class LuaHTTPCall {
    package struct Answer: Sendable {
        package var status: Int
        package var headers: HTTPHeaders
        package var body: ByteBuffer
        package var returnDuplicateHeaders: Bool

        package static func failure(returnDuplicateHeaders: Bool) -> Answer {
            Answer(status: 503, headers: [:], body: ByteBuffer(string: "upstream failure"),
                   returnDuplicateHeaders: returnDuplicateHeaders)
        }

        /// Pushes `(headers, body_or_nil)`: ":status" and every header by its lower-case name;
        /// a repeated header is its last value, or all of them as a list with
        /// `return_duplicate_headers`.
        package func push(_ L: OpaquePointer) {
            lua_createtable(L, 0, Int32(headers.count + 1))
            LuaObjects.push(L, String(status))
            lua_setfield(L, -2, ":status")
            var grouped: [String: [String]] = [:]
            var order: [String] = []
            for (name, value) in headers {
                let key = name.lowercased()
                if grouped[key] == nil { order.append(key) }
                grouped[key, default: []].append(value)
            }
            for key in order {
                let values = grouped[key]!
                if returnDuplicateHeaders && values.count > 1 {
                    lua_createtable(L, Int32(values.count), 0)
                    for (i, v) in values.enumerated() {
                        LuaObjects.push(L, v)
                        lua_rawseti(L, -2, lua_Integer(i + 1))
                    }
                } else {
                    LuaObjects.push(L, values[values.count - 1])
                }
                lua_setfield(L, -2, key)
            }
            if body.readableBytes > 0 {
                body.withUnsafeReadableBytes { LuaObjects.push(L, bytes: $0) }
            } else {
                lua_pushnil(L)
            }
        }
    }

    /// The filter whose script waits; nil for an asynchronous call.
    private weak var filter: LuaFilter?
    private let response: Bool
    private let returnDuplicateHeaders: Bool
    private var callout: HTTPCallout?
    /// The in-flight counts this call is part of (its stream's and its VM's), until it ends.
    private var counts: [LuaInFlight]

    package init(filter: LuaFilter?, response: Bool, eventLoop: EventLoop, timers: LoopTimers, bodyLimit: Int,
         returnDuplicateHeaders: Bool, counts: [LuaInFlight] = []) {
        self.filter = filter
        self.response = response
        self.returnDuplicateHeaders = returnDuplicateHeaders
        self.counts = counts
        for c in counts { c.enter() }
        callout = HTTPCallout(eventLoop: eventLoop, timers: timers, bodyLimit: bodyLimit) { [self] result in
            switch result {
            case .success(let (head, body)):
                finish(Answer(status: head.status, headers: head.headers, body: body, returnDuplicateHeaders: returnDuplicateHeaders))
            case .failure:
                finish(.failure(returnDuplicateHeaders: returnDuplicateHeaders))
            }
        }
    }

    private func leaveCounts() {
        for c in counts { c.leave() }
        counts = []
    }

    /// Sends the request; the answer never comes back from inside this call.
    package func start(cluster: Cluster, request: RequestHead, body requestBody: ByteBuffer?, timeoutMs: Int, upstream client: UpstreamClient) {
        callout?.start(cluster: cluster, request: request, body: requestBody, timeoutMs: timeoutMs, upstream: client)
    }

    /// The stream went away while its script waited: drop the request.
    package func cancel() {
        guard let callout else { return }
        self.callout = nil
        callout.cancel()
        leaveCounts()
        filter = nil
    }

    private func finish(_ answer: Answer) {
        callout = nil
        leaveCounts()
        guard let filter else { return }
        self.filter = nil
        filter.httpCallFinished(response, self, answer)
    }
}

/// `handle:httpCall(cluster, headers, body, timeout_ms[, asynchronous])` and
/// `handle:httpCall(cluster, headers, body, {asynchronous=, timeout_ms=, trace_sampled=,
/// return_duplicate_headers=, send_xff=})`.
package enum LuaHTTPCallAPI {
    package struct Options {
        package var asynchronous = false
        package var timeoutMs = 0
        package var returnDuplicateHeaders = false
        package var sendXff = true
    }

    package static let optionKeys: Set<String> = ["asynchronous", "timeout_ms", "trace_sampled", "return_duplicate_headers", "send_xff"]

    package static func httpCall(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.scope(L, .handle)
        let clusterName = try LuaObjects.checkString(L, 2)
        let options = try parseOptions(L)
        guard let cluster = s.filter.stream.snapshot.clusters[clusterName] else {
            throw LuaRaise("http call cluster invalid. Must be configured")
        }
        var request = try parseHeaders(L, 3)
        var body: ByteBuffer?
        switch lua_type(L, 4) {
        case LUA_TNIL, LUA_TNONE:
            body = nil
        case LUA_TSTRING:
            var len = 0
            let p = lua_tolstring(L, 4, &len)!
            var b = ByteBuffer()
            b.writeBytes(UnsafeRawBufferPointer(start: p, count: len))
            body = b
        default:
            throw LuaRaise("http call body must be a string or nil")
        }
        if let body, body.readableBytes > 0 {
            request.headers.replaceOrAdd(name: "content-length", value: String(body.readableBytes))
        }
        if options.sendXff, let ip = s.filter.stream.connectionInfo.localAddress?.ipAddress {
            if let xff = request.headers.first(name: "x-forwarded-for") {
                request.headers.replaceOrAdd(name: "x-forwarded-for", value: xff + ", " + ip)
            } else {
                request.headers.add(name: "x-forwarded-for", value: ip)
            }
        }
        let stream = s.filter.stream
        guard let upstream = stream.upstream else { throw LuaRaise("httpCall is not available on this stream") }
        let counts = try inFlightCounts(s)
        if options.asynchronous {
            let call = LuaHTTPCall(filter: nil, response: s.response, eventLoop: stream.eventLoop, timers: stream.timers,
                                   bodyLimit: stream.bufferLimit, returnDuplicateHeaders: options.returnDuplicateHeaders,
                                   counts: counts)
            call.start(cluster: cluster, request: request, body: body, timeoutMs: options.timeoutMs, upstream: upstream)
            return 0
        }
        try LuaHandleAPI.checkCanWait(L, s, "httpCall()")
        let call = LuaHTTPCall(filter: s.filter, response: s.response, eventLoop: stream.eventLoop, timers: stream.timers,
                               bodyLimit: stream.bufferLimit, returnDuplicateHeaders: options.returnDuplicateHeaders,
                               counts: counts)
        s.filter[run: s.response].call = call
        s.filter[run: s.response].wait = .httpCall
        call.start(cluster: cluster, request: request, body: body, timeoutMs: options.timeoutMs, upstream: upstream)
        return luaYield
    }

    /// The stream's and the VM's in-flight counts, when neither is full: one request firing
    /// thousands of asynchronous calls would take every connection of the cluster's pool.
    private static func inFlightCounts(_ s: LuaScope) throws -> [LuaInFlight] {
        let stream = s.filter.calls, plugin = s.vm.calls
        guard !stream.isFull else {
            throw LuaRaise("too many httpCall()s in flight (limits.maxPendingCallsPerStream = \(stream.limit))")
        }
        guard !plugin.isFull else {
            throw LuaRaise("too many httpCall()s in flight (limits.maxPendingCalls = \(plugin.limit) on this event loop)")
        }
        return [stream, plugin]
    }

    /// Argument 5: the timeout (then 6: asynchronous), or the options table.
    package static func parseOptions(_ L: OpaquePointer) throws -> Options {
        var o = Options()
        switch lua_type(L, 5) {
        case LUA_TNIL, LUA_TNONE:
            break
        case LUA_TNUMBER:
            o.timeoutMs = try timeout(L, 5)
            if lua_type(L, 6) != LUA_TNONE && lua_type(L, 6) != LUA_TNIL {
                guard lua_type(L, 6) == LUA_TBOOLEAN else { throw LuaRaise("http call asynchronous flag must be a boolean") }
                o.asynchronous = lua_toboolean(L, 6) != 0
            }
        case LUA_TTABLE:
            lua_pushnil(L)
            while lua_next(L, 5) != 0 {
                defer { meshd_lua_pop(L, 1) }
                guard lua_type(L, -2) == LUA_TSTRING, let key = LuaObjects.string(L, -2), optionKeys.contains(key) else {
                    let shown = lua_type(L, -2) == LUA_TSTRING ? LuaObjects.string(L, -2) ?? "?" : LuaObjects.typeName(L, -2)
                    throw LuaRaise("\"\(shown)\" is not valid key for httpCall() options")
                }
                if key == "timeout_ms" {
                    o.timeoutMs = try timeout(L, -1)
                    continue
                }
                guard lua_type(L, -1) == LUA_TBOOLEAN else { throw LuaRaise("httpCall() option \(key) must be a boolean") }
                let flag = lua_toboolean(L, -1) != 0
                switch key {
                case "asynchronous": o.asynchronous = flag
                case "return_duplicate_headers": o.returnDuplicateHeaders = flag
                case "send_xff": o.sendXff = flag
                default: break  // trace_sampled: no tracing spans yet
                }
            }
        default:
            throw LuaRaise("http call timeout must be a number or an options table")
        }
        return o
    }

    private static func timeout(_ L: OpaquePointer, _ index: Int32) throws -> Int {
        var ok: Int32 = 0
        let ms = lua_tointegerx(L, index, &ok)
        guard ok != 0 else { throw LuaRaise("http call timeout must be an integer") }
        guard ms >= 0 else { throw LuaRaise("http call timeout must be >= 0") }
        return Int(ms)
    }

    /// The headers table: `:method`, `:path`, `:authority` required (`:scheme` optional);
    /// each value a string or a table of strings.
    package static func parseHeaders(_ L: OpaquePointer, _ index: Int32) throws -> RequestHead {
        guard lua_type(L, index) == LUA_TTABLE else { throw LuaRaise("http call headers must be a table") }
        var head = RequestHead(method: "", scheme: "http", authority: "", path: "", headers: [:], version: .http11)
        var method: String?, path: String?, authority: String?
        lua_pushnil(L)
        while lua_next(L, index) != 0 {
            defer { meshd_lua_pop(L, 1) }
            guard lua_type(L, -2) == LUA_TSTRING, let name = LuaObjects.string(L, -2) else {
                throw LuaRaise("http call header names must be strings")
            }
            var values: [String] = []
            if lua_type(L, -1) == LUA_TTABLE {
                let n = lua_rawlen(L, -1)
                for i in 0..<n {
                    lua_rawgeti(L, -1, lua_Integer(i + 1))
                    defer { meshd_lua_pop(L, 1) }
                    guard lua_type(L, -1) == LUA_TSTRING, let v = LuaObjects.string(L, -1) else {
                        throw LuaRaise("http call header value must be a string or a table of strings")
                    }
                    values.append(v)
                }
            } else if lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER, let v = LuaObjects.string(L, -1) {
                values.append(v)
            } else {
                throw LuaRaise("http call header value must be a string or a table of strings")
            }
            let key = name.lowercased()
            switch key {
            case ":method": method = values.last
            case ":path": path = values.last
            case ":authority": authority = values.last
            case ":scheme": if let v = values.last { head.scheme = v }
            default:
                if key.hasPrefix(":") || key == "host" { continue }
                try LuaHeaderMapAPI.checkName(key)
                for v in values { head.headers.add(name: key, value: v) }
            }
        }
        guard let method, let path, let authority, !method.isEmpty, !path.isEmpty, !authority.isEmpty else {
            throw LuaRaise("http call headers must include ':path', ':method', and ':authority'")
        }
        head.method = method
        head.path = path
        head.authority = authority
        return head
    }
}
