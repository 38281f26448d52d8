import CLua
import COpenSSL
import MeshAPI
import Transport

/// importPublicKey / verifySignature, over OpenSSL's EVP interface.
package enum LuaCryptoAPI {
    private static let hashes: Set<String> = ["SHA1", "SHA224", "SHA256", "SHA384", "SHA512"]

    /// The key object's methods: `get()` is Envoy's form, `importPublicKey(der, len):get()`.
    package static var keyMethods: [(String, LuaHostFn)] {
        [("get", { L in LuaObjects.host(L) { L in try LuaCryptoAPI.get(L) } })]
    }

    /// The key to hand to verifySignature (the object itself), or nil when the DER did not parse.
    package static func get(_ L: OpaquePointer) throws -> Int32 {
        let key = try LuaObjects.object(L, 1, .publicKey)
        if key.pointee.ptr == nil { lua_pushnil(L) } else { lua_pushvalue(L, 1) }
        return 1
    }

    /// importPublicKey(der, len): a DER SubjectPublicKeyInfo; the key object frees itself on GC.
    package static func importPublicKey(_ L: OpaquePointer) throws -> Int32 {
        let s = try LuaObjects.run(L, .handle)
        guard lua_type(L, 2) == LUA_TSTRING else { throw LuaRaise("importPublicKey() expects a DER string") }
        var len = 0
        let p = lua_tolstring(L, 2, &len)!
        let n = (meshd_lua_isnoneornil(L, 3) != 0) ? len : min(len, max(0, try LuaObjects.checkInteger(L, 3)))
        var cursor: UnsafePointer<UInt8>? = UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self)
        let key = d2i_PUBKEY(nil, &cursor, n)
        LuaObjects.push(L, s.vm, .publicKey, ptr: key.map { UnsafeMutableRawPointer($0) })
        return 1
    }

    /// verifySignature(hash, key, sig, sigLen, data, dataLen) → true | false, reason.
    package static func verifySignature(_ L: OpaquePointer) throws -> Int32 {
        _ = try LuaObjects.run(L, .handle)
        let hash = try LuaObjects.checkString(L, 2)
        let keyObj = try LuaObjects.object(L, 3, .publicKey)
        let sig = try bytes(L, 4, lengthAt: 5)
        let data = try bytes(L, 6, lengthAt: 7)
        guard let raw = keyObj.pointee.ptr else {
            guard hashes.contains(hash.uppercased()) else { return failure(L, "\(hash) is not supported.") }
            return failure(L, "Failed to verify digest. Error code: 0")
        }
        let key = PublicKey(retaining: OpaquePointer(raw))
        let result = PublicKeySignature.verify(digest: hash, key: key, signature: UnsafeBufferPointer(start: sig.base, count: sig.count),
                                               data: UnsafeBufferPointer(start: data.base, count: data.count))
        switch result {
        case .success: break
        case .failure(.unsupportedDigest): return failure(L, "\(hash) is not supported.")
        case .failure(.initialization): return failure(L, "Failed to initialize digest verify.")
        case .failure(.mismatch(let rc)): return failure(L, "Failed to verify digest. Error code: \(rc)")
        }
        lua_pushboolean(L, 1)
        lua_pushnil(L)
        return 2
    }

    private static func failure(_ L: OpaquePointer, _ reason: String) -> Int32 {
        lua_pushboolean(L, 0)
        LuaObjects.push(L, reason)
        return 2
    }

    /// A string argument, limited by an optional length argument.
    private static func bytes(_ L: OpaquePointer, _ index: Int32, lengthAt lengthIndex: Int32) throws
        -> (base: UnsafePointer<UInt8>, count: Int) {
        guard lua_type(L, index) == LUA_TSTRING else { throw LuaRaise("bad argument #\(index - 1) (string expected)") }
        var len = 0
        let p = lua_tolstring(L, index, &len)!
        let n = (meshd_lua_isnoneornil(L, lengthIndex) != 0) ? len : min(len, max(0, try LuaObjects.checkInteger(L, lengthIndex)))
        return (UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), n)
    }

    package static func freeKey(_ L: OpaquePointer?) -> Int32 {
        guard let L, let raw = lua_touserdata(L, 1) else { return 0 }
        let obj = raw.assumingMemoryBound(to: meshd_obj.self)
        if let key = obj.pointee.ptr {
            EVP_PKEY_free(OpaquePointer(key))
            obj.pointee.ptr = nil
        }
        return 0
    }
}
