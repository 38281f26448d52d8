import COpenSSL
import MeshAPI

/// ALPN protocol lists: wire encoding for OpenSSL and the server-side selection callback.
package enum ALPN {
    /// Encodes `["h2", "http/1.1"]` as the length-prefixed list OpenSSL expects.
    package static func wireFormat(_ protocols: [String]) throws -> [UInt8] {
        var wire: [UInt8] = []
        for name in protocols {
            let bytes = Array(name.utf8)
            guard (1...255).contains(bytes.count) else {
                throw TLSConfigurationError(
                    operation: "invalid ALPN protocol name",
                    reason: "\"\(name)\" must be 1 to 255 bytes long")
            }
            wire.append(UInt8(bytes.count))
            wire.append(contentsOf: bytes)
        }
        return wire
    }

    /// Picks the first of `preferences` (server order) that the client's wire-format list contains.
    /// Returns the offset and length of the match inside `offered`, so OpenSSL can point into
    /// the client's buffer, which outlives the callback.
    package static func select(preferences: [[UInt8]], offered: UnsafeBufferPointer<UInt8>) -> (offset: Int, length: Int)? {
        for wanted in preferences {
            var index = 0
            while index < offered.count {
                let length = Int(offered[index])
                let start = index + 1
                guard start + length <= offered.count else { break }  // malformed tail
                if length == wanted.count,
                   offered[start..<start + length].elementsEqual(wanted) {
                    return (start, length)
                }
                index = start + length
            }
        }
        return nil
    }
}

/// The server's ALPN preferences, reached from the C callback through its `arg` pointer.
/// The owning TLSServerContext keeps it alive as long as its SSL_CTX.
package final class ALPNServerPreferences {
    package let protocols: [[UInt8]]

    package init(_ protocols: [String]) {
        self.protocols = protocols.map { Array($0.utf8) }
    }

    /// Installs the selection callback on `ctx`; `self` must outlive `ctx`.
    package func install(on ctx: OpaquePointer) {
        let arg = Unmanaged.passUnretained(self).toOpaque()
        // A capture-free closure, so it converts to a C function pointer.
        SSL_CTX_set_alpn_select_cb(ctx, { _, out, outLength, input, inputLength, arg in
            guard let arg, let out, let outLength, let input else { return SSL_TLSEXT_ERR_NOACK }
            let preferences = Unmanaged<ALPNServerPreferences>.fromOpaque(arg).takeUnretainedValue()
            let offered = UnsafeBufferPointer(start: input, count: Int(inputLength))
            guard let match = ALPN.select(preferences: preferences.protocols, offered: offered) else {
                // No common protocol: carry on without ALPN rather than failing the handshake.
                return SSL_TLSEXT_ERR_NOACK
            }
            out.pointee = input + match.offset
            outLength.pointee = UInt8(match.length)
            return SSL_TLSEXT_ERR_OK
        }, arg)
    }
}
