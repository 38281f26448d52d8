import CLua
import NIOCore
import NIOHTTP1
import FilterHost
import Transport
import LuaRuntime
import MeshAPI

/// Envoy's buffer object: the whole body (aux 0) or one bodyChunks() chunk (aux = its serial,
/// valid only until the script asks for the next chunk).
package enum LuaBufferAPI {
    package static var methods: [(String, LuaHostFn)] {
        [
            ("length", { L in LuaObjects.host(L) { L in try LuaBufferAPI.length(L) } }),
            ("getBytes", { L in LuaObjects.host(L) { L in try LuaBufferAPI.getBytes(L) } }),
            ("setBytes", { L in LuaObjects.host(L) { L in try LuaBufferAPI.setBytes(L) } }),
        ]
    }

    /// The run owning the buffer, after checking the buffer is still the current one.
    private static func scope(_ L: OpaquePointer) throws -> LuaScope {
        let s = try LuaObjects.scope(L, .buffer)
        let aux = s.obj.pointee.aux
        // Fields read in place: a copy of the run would retain everything in it.
        let f = s.filter, r = s.response
        if aux == 0 ? f[run: r].body == nil : (aux != f[run: r].chunkSerial || f[run: r].wait != .none) {
            throw LuaRaise.outOfScope
        }
        return s
    }

    private static func read(_ s: LuaScope) -> ByteBuffer {
        s.obj.pointee.aux == 0 ? s.filter[run: s.response].body ?? ByteBuffer() : s.filter[run: s.response].chunk
    }

    package static func length(_ L: OpaquePointer) throws -> Int32 {
        let s = try scope(L)
        lua_pushinteger(L, lua_Integer(read(s).readableBytes))
        return 1
    }

    package static func getBytes(_ L: OpaquePointer) throws -> Int32 {
        let s = try scope(L)
        let index = try LuaObjects.checkInteger(L, 2)
        let count = try LuaObjects.checkInteger(L, 3)
        let buffer = read(s)
        guard index >= 0, count >= 0, index + count <= buffer.readableBytes else {
            throw LuaRaise("index/length must be >= 0 and (index + length) must be <= buffer size")
        }
        buffer.withUnsafeReadableBytes { bytes in
            LuaObjects.push(L, bytes: UnsafeRawBufferPointer(rebasing: bytes[index..<(index + count)]))
        }
        return 1
    }

    /// Replaces the content; for the whole body the headers, if not gone yet, get the new content-length.
    package static func setBytes(_ L: OpaquePointer) throws -> Int32 {
        let s = try scope(L)
        guard lua_type(L, 2) == LUA_TSTRING else { throw LuaRaise("setBytes() expects a string") }
        var len = 0
        let p = lua_tolstring(L, 2, &len)!
        var buffer = ByteBuffer()
        buffer.writeBytes(UnsafeRawBufferPointer(start: p, count: len))
        let f = s.filter
        if s.obj.pointee.aux == 0 {
            guard !f[run: s.response].bodyPassed else { throw LuaRaise("buffer can no longer be modified") }
            f[run: s.response].body = buffer
            // Headers not yet gone (held, or still in the script's hands at the headers) follow the body.
            if !f[run: s.response].headersPassed {
                if s.response { setLength(&f.respHead.headers, len) } else { setLength(&f.reqHead.headers, len) }
            }
        } else {
            f[run: s.response].chunk = buffer
        }
        lua_pushinteger(L, lua_Integer(len))
        return 1
    }

    private static func setLength(_ headers: inout NIOHTTP1.HTTPHeaders, _ length: Int) {
        headers.remove(name: "transfer-encoding")
        headers.replaceOrAdd(name: "content-length", value: String(length))
    }
}
