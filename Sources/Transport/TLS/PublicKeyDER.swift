/// DER SubjectPublicKeyInfo built from raw key parameters (a JWK's `n`/`e` or `x`/`y`), so
/// keys from a JWKS go through the same `d2i_PUBKEY` path as PEM/DER keys.
public enum PublicKeyDER {
    public enum Curve: String, Sendable {
        case p256 = "P-256", p384 = "P-384"

        /// Coordinate length in bytes (and half an ES256/ES384 signature).
        public var coordinateLength: Int { self == .p256 ? 32 : 48 }

        fileprivate var oid: [UInt8] {
            switch self {
            case .p256: [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07] // prime256v1
            case .p384: [0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22] // secp384r1
            }
        }
    }

    private static let rsaEncryption: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]
    private static let ecPublicKey: [UInt8] = [0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]

    public static func rsa(modulus n: [UInt8], exponent e: [UInt8]) -> [UInt8] {
        let algorithm = sequence(rsaEncryption + [0x05, 0x00])
        return sequence(algorithm + bitString(sequence(integer(n) + integer(e))))
    }

    public static func ec(curve: Curve, x: [UInt8], y: [UInt8]) -> [UInt8] {
        let algorithm = sequence(ecPublicKey + curve.oid)
        return sequence(algorithm + bitString([0x04] + x + y))
    }

    /// A JWS ECDSA signature (`r || s`, fixed width) as the DER `ECDSA-Sig-Value` OpenSSL verifies.
    public static func ecdsaSignature(raw: [UInt8]) -> [UInt8] {
        let half = raw.count / 2
        return sequence(integer(Array(raw[..<half])) + integer(Array(raw[half...])))
    }

    // MARK: encoding

    static func length(_ n: Int) -> [UInt8] {
        if n < 0x80 { return [UInt8(n)] }
        var bytes: [UInt8] = []
        var v = n
        while v > 0 { bytes.insert(UInt8(v & 0xFF), at: 0); v >>= 8 }
        return [0x80 | UInt8(bytes.count)] + bytes
    }

    static func sequence(_ content: [UInt8]) -> [UInt8] { [0x30] + length(content.count) + content }

    static func bitString(_ content: [UInt8]) -> [UInt8] { [0x03] + length(content.count + 1) + [0x00] + content }

    /// An unsigned big-endian integer: leading zeros dropped, a zero byte added when the high bit is set.
    static func integer(_ magnitude: [UInt8]) -> [UInt8] {
        var m = Array(magnitude.drop { $0 == 0 })
        if m.isEmpty { m = [0] }
        if m[0] & 0x80 != 0 { m.insert(0, at: 0) }
        return [0x02] + length(m.count) + m
    }
}
