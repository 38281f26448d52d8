import CLua
import MeshAPI

/// A JSON reader that pushes Lua values straight onto the stack (no intermediate tree).
/// Host code allocates past the VM's memory cap, so the reader checks the cap itself (a
/// text of small values makes tables many times its size) and the slice's clock.
package struct LuaJSONParser {
    package let L: OpaquePointer
    package let bytes: UnsafeRawBufferPointer
    package let vm: LuaVM
    package var pos = 0
    private var scratch: [UInt8] = []
    private var values = 0

    package init(L: OpaquePointer, bytes: UnsafeRawBufferPointer, vm: LuaVM) {
        self.L = L
        self.bytes = bytes
        self.vm = vm
    }

    /// Every so many values: within the memory cap and the slice's time.
    private mutating func checkLimits() throws {
        values += 1
        guard values % 1024 == 0 else { return }
        if vm.memoryInUse > vm.memoryLimit { throw LuaRaise("json.decode: not enough memory") }
        if vm.sliceExpired { throw LuaRaise("time budget exceeded (\(vm.limits.maxRunMs) ms)") }
    }

    package mutating func parseDocument() throws {
        try value(depth: 0)
        skipSpace()
        guard pos == bytes.count else { throw error("trailing characters") }
    }

    private func error(_ what: String) -> LuaRaise {
        LuaRaise("json.decode: \(what) at position \(pos + 1)")
    }

    private mutating func skipSpace() {
        while pos < bytes.count, [32, 9, 10, 13].contains(bytes[pos]) { pos += 1 }
    }

    private var current: UInt8? { pos < bytes.count ? bytes[pos] : nil }

    private mutating func expect(_ word: String) throws {
        for b in word.utf8 {
            guard current == b else { throw error("unexpected character") }
            pos += 1
        }
    }

    private mutating func value(depth: Int) throws {
        guard depth < LuaJSON.maxDepth, lua_checkstack(L, 3) != 0 else { throw error("nesting too deep") }
        try checkLimits()
        skipSpace()
        guard let c = current else { throw error("unexpected end") }
        switch c {
        case UInt8(ascii: "{"): try object(depth: depth)
        case UInt8(ascii: "["): try array(depth: depth)
        case UInt8(ascii: "\""): try string()
        case UInt8(ascii: "t"): try expect("true"); lua_pushboolean(L, 1)
        case UInt8(ascii: "f"): try expect("false"); lua_pushboolean(L, 0)
        case UInt8(ascii: "n"): try expect("null"); lua_pushlightuserdata(L, LuaJSON.nullSentinel)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
        default: throw error("unexpected character")
        }
    }

    private mutating func object(depth: Int) throws {
        pos += 1
        meshd_lua_newtable(L)
        skipSpace()
        if current == UInt8(ascii: "}") { pos += 1; return }
        while true {
            skipSpace()
            guard current == UInt8(ascii: "\"") else { throw error("expected a string key") }
            try string()
            skipSpace()
            guard current == UInt8(ascii: ":") else { throw error("expected ':'") }
            pos += 1
            try value(depth: depth + 1)
            lua_rawset(L, -3)
            skipSpace()
            guard let c = current else { throw error("unexpected end") }
            pos += 1
            if c == UInt8(ascii: "}") { return }
            guard c == UInt8(ascii: ",") else { throw error("expected ',' or '}'") }
        }
    }

    private mutating func array(depth: Int) throws {
        pos += 1
        meshd_lua_newtable(L)
        skipSpace()
        if current == UInt8(ascii: "]") { pos += 1; return }
        var i: lua_Integer = 1
        while true {
            try value(depth: depth + 1)
            lua_rawseti(L, -2, i)
            i += 1
            skipSpace()
            guard let c = current else { throw error("unexpected end") }
            pos += 1
            if c == UInt8(ascii: "]") { return }
            guard c == UInt8(ascii: ",") else { throw error("expected ',' or ']'") }
        }
    }

    private mutating func number() throws {
        let start = pos
        var integral = true
        while let c = current, c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || (48...57).contains(c)
            || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") { integral = false }
            pos += 1
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
        if integral, let i = Int64(text) { lua_pushinteger(L, lua_Integer(i)); return }
        guard let d = Double(text) else { throw error("bad number") }
        // Past the double range: infinity would not encode again, so refuse it here.
        guard d.isFinite else {
            pos = start
            throw error("number out of range")
        }
        lua_pushnumber(L, d)
    }

    private mutating func string() throws {
        pos += 1
        let start = pos
        // Fast path: no escapes, push the bytes as they are.
        while let c = current, c != UInt8(ascii: "\""), c != UInt8(ascii: "\\") { pos += 1 }
        guard let stop = current else { throw error("unterminated string") }
        if stop == UInt8(ascii: "\"") {
            LuaObjects.push(L, bytes: UnsafeRawBufferPointer(rebasing: bytes[start..<pos]))
            pos += 1
            return
        }
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: bytes[start..<pos])
        while true {
            guard let c = current else { throw error("unterminated string") }
            pos += 1
            if c == UInt8(ascii: "\"") { break }
            guard c == UInt8(ascii: "\\") else { scratch.append(c); continue }
            guard let e = current else { throw error("unterminated string") }
            pos += 1
            if e == UInt8(ascii: "u") {
                try unicodeEscape()
            } else {
                guard let byte = JSONText.unescaped(e) else { throw error("bad escape") }
                scratch.append(byte)
            }
        }
        scratch.withUnsafeBytes { LuaObjects.push(L, bytes: $0) }
    }

    private mutating func hex4() throws -> UInt32 {
        guard pos + 4 <= bytes.count,
              let v = UInt32(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[pos..<pos + 4]), as: UTF8.self),
                             radix: 16) else { throw error("bad \\u escape") }
        pos += 4
        return v
    }

    private mutating func unicodeEscape() throws {
        var code = try hex4()
        if (0xD800..<0xDC00).contains(code), pos + 6 <= bytes.count, bytes[pos] == 92, bytes[pos + 1] == 117 {
            pos += 2
            let low = try hex4()
            guard (0xDC00..<0xE000).contains(low) else { throw error("bad surrogate pair") }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        }
        let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
        scratch.append(contentsOf: Array(String(Character(scalar)).utf8))
    }
}
