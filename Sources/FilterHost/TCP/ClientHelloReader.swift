import NIOCore
import Transport

/// Reads the server name (SNI) from the first bytes of a TLS connection without terminating
/// it, as Envoy's `tls_inspector` does. Bytes are only looked at, never consumed: they are
/// forwarded upstream unchanged. The ClientHello may span several TLS records; at most
/// `maxClientHelloBytes` of it are gathered (Envoy's inspector reads at most 64 KiB).
enum ClientHelloReader {
    enum Outcome: Equatable {
        /// Not enough bytes yet to decide.
        case needMore
        /// Not a TLS handshake (or a malformed one): match the connection without a name.
        case notTLS
        /// A ClientHello; `serverName` is nil when it carries no (usable) SNI.
        case clientHello(serverName: String?)
    }

    static let maxClientHelloBytes = 64 * 1024
    private static let recordHeader = 5
    private static let handshakeRecord: UInt8 = 22
    private static let clientHelloType: UInt8 = 1

    static func read(_ bytes: ByteBufferView) -> Outcome {
        // Gather the handshake layer from consecutive handshake records.
        var handshake: [UInt8] = []
        var at = bytes.startIndex
        var needed: Int?
        while true {
            guard bytes.endIndex - at >= recordHeader else {
                return at == bytes.startIndex && !prefixPlausible(bytes) ? .notTLS : .needMore
            }
            let type = bytes[at], major = bytes[at + 1]
            let length = Int(bytes[at + 3]) << 8 | Int(bytes[at + 4])
            guard type == handshakeRecord, major == 3, length > 0, length <= 16_384 + 2048 else { return .notTLS }
            let start = at + recordHeader
            guard bytes.endIndex - start >= length else {
                handshake += bytes[start..<bytes.endIndex]
                return handshake.count > maxClientHelloBytes ? .notTLS : .needMore
            }
            handshake += bytes[start..<(start + length)]
            at = start + length
            if needed == nil, handshake.count >= 4 {
                guard handshake[0] == clientHelloType else { return .notTLS }
                needed = 4 + (Int(handshake[1]) << 16 | Int(handshake[2]) << 8 | Int(handshake[3]))
                guard needed! <= maxClientHelloBytes else { return .notTLS }
            }
            if let needed, handshake.count >= needed {
                return parse(body: handshake[4..<needed])
            }
        }
    }

    /// A first byte or two that cannot start a TLS record settles it at once.
    private static func prefixPlausible(_ bytes: ByteBufferView) -> Bool {
        guard let first = bytes.first else { return true }
        if first != handshakeRecord { return false }
        return bytes.count < 2 || bytes[bytes.startIndex + 1] == 3
    }

    /// The ClientHello body: version, random, session id, cipher suites, compression, extensions.
    private static func parse(body: ArraySlice<UInt8>) -> Outcome {
        var r = Cursor(body)
        guard r.skip(2 + 32), let sid = r.u8(), r.skip(Int(sid)),
              let suites = r.u16(), r.skip(suites), let comp = r.u8(), r.skip(Int(comp)) else { return .notTLS }
        // No extensions at all is a valid (old) ClientHello without SNI.
        guard !r.atEnd else { return .clientHello(serverName: nil) }
        guard let extLength = r.u16(), var exts = r.take(extLength) else { return .notTLS }
        while !exts.atEnd {
            guard let type = exts.u16(), let length = exts.u16(), let ext = exts.take(length) else { return .notTLS }
            guard type == 0 else { continue }
            switch ServerNameExtension.parse(ext.rest) {
            case .hostName(let name): return .clientHello(serverName: name)
            case .malformed: return .notTLS
            }
        }
        return .clientHello(serverName: nil)
    }

    private struct Cursor {
        var rest: ArraySlice<UInt8>
        init(_ bytes: ArraySlice<UInt8>) { rest = bytes }
        var atEnd: Bool { rest.isEmpty }
        mutating func skip(_ n: Int) -> Bool {
            guard rest.count >= n else { return false }
            rest = rest.dropFirst(n)
            return true
        }
        mutating func u8() -> UInt8? {
            guard let b = rest.first else { return nil }
            rest = rest.dropFirst()
            return b
        }
        mutating func u16() -> Int? {
            guard rest.count >= 2 else { return nil }
            let v = Int(rest[rest.startIndex]) << 8 | Int(rest[rest.startIndex + 1])
            rest = rest.dropFirst(2)
            return v
        }
        mutating func take(_ n: Int) -> Cursor? {
            guard rest.count >= n else { return nil }
            let part = Cursor(rest.prefix(n))
            rest = rest.dropFirst(n)
            return part
        }
    }
}
