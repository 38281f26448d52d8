#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import Transport

/// One verification key of a JWKS: RSA (`n`, `e`) or EC (`crv` P-256/P-384, `x`, `y`).
struct JWK: Sendable {
    enum KeyType: Sendable, Equatable {
        case rsa
        case ec(PublicKeyDER.Curve)
    }

    let kid: String?
    /// The key's `alg` when the JWKS names one; a token's alg must then be the same.
    let alg: String?
    let type: KeyType
    let key: PublicKey

    /// Whether a token signed with `alg` (already known to be supported) may use this key.
    func accepts(alg tokenAlg: String) -> Bool {
        if let alg, alg != tokenAlg { return false }
        switch type {
        case .rsa: return tokenAlg.hasPrefix("RS") || tokenAlg.hasPrefix("PS")
        case .ec(let curve): return (tokenAlg == "ES256" && curve == .p256) || (tokenAlg == "ES384" && curve == .p384)
        }
    }
}

/// A JSON Web Key Set (RFC 7517), parsed once per config snapshot. Keys of other kinds
/// (`oct`, OKP) are skipped, as Envoy does; a set with no usable key is an error.
enum JWKS {
    static func parse(_ text: String) throws -> [JWK] {
        guard let json = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else {
            throw ConfigError(path: "jwks", reason: "Jwks is an invalid JSON")
        }
        guard let list = json["keys"] else { throw ConfigError(path: "jwks", reason: "Jwks does not have [keys] field") }
        guard let keys = list.arrayValue else { throw ConfigError(path: "jwks", reason: "[keys] in Jwks is not an array") }
        var out: [JWK] = []
        for (i, k) in keys.enumerated() {
            let kid = k["kid"]?.stringValue, alg = k["alg"]?.stringValue
            switch k["kty"]?.stringValue {
            case "RSA":
                guard let n = k["n"]?.stringValue.flatMap(Base64URL.decode), let e = k["e"]?.stringValue.flatMap(Base64URL.decode),
                      let key = PublicKey(der: PublicKeyDER.rsa(modulus: n, exponent: e)) else {
                    throw ConfigError(path: "jwks.keys[\(i)]", reason: "Jwks RSA [n] or [e] field is missing or has a parse error")
                }
                out.append(JWK(kid: kid, alg: alg, type: .rsa, key: key))
            case "EC":
                guard let curve = k["crv"]?.stringValue.flatMap(PublicKeyDER.Curve.init(rawValue:)),
                      let x = k["x"]?.stringValue.flatMap(Base64URL.decode), let y = k["y"]?.stringValue.flatMap(Base64URL.decode),
                      x.count == curve.coordinateLength, y.count == curve.coordinateLength,
                      let key = PublicKey(der: PublicKeyDER.ec(curve: curve, x: x, y: y)) else {
                    throw ConfigError(path: "jwks.keys[\(i)]", reason: "Jwks EC [crv], [x] or [y] field is missing or has a parse error")
                }
                out.append(JWK(kid: kid, alg: alg, type: .ec(curve), key: key))
            default:
                continue
            }
        }
        guard !out.isEmpty else { throw ConfigError(path: "jwks", reason: "Jwks doesn't have any valid public key") }
        return out
    }
}
