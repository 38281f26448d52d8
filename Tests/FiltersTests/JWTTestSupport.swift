import COpenSSL
import Foundation
@testable import Filters
import Transport

/// A signing key made with OpenSSL for the tests, its JWK, and tokens it signs.
/// Immutable after init: one OpenSSL key, only read.
final class TestSigningKey: @unchecked Sendable {
    enum Kind { case rsa, p256, p384 }

    let kind: Kind
    let kid: String
    private let pkey: OpaquePointer

    init(_ kind: Kind, kid: String = "k1") {
        self.kind = kind
        self.kid = kid
        let ctx = EVP_PKEY_CTX_new_id(kind == .rsa ? EVP_PKEY_RSA : EVP_PKEY_EC, nil)!
        defer { EVP_PKEY_CTX_free(ctx) }
        precondition(EVP_PKEY_keygen_init(ctx) == 1)
        switch kind {
        case .rsa: precondition(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048) == 1)
        case .p256: precondition(EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1) == 1)
        case .p384: precondition(EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_secp384r1) == 1)
        }
        var key: OpaquePointer?
        precondition(EVP_PKEY_keygen(ctx, &key) == 1)
        pkey = key!
    }

    deinit { EVP_PKEY_free(pkey) }

    private func bignum(_ name: String, pad: Int = 0) -> [UInt8] {
        var bn: OpaquePointer?
        precondition(EVP_PKEY_get_bn_param(pkey, name, &bn) == 1)
        defer { BN_free(bn) }
        let n = max(pad, (Int(BN_num_bits(bn)) + 7) / 8)
        var out = [UInt8](repeating: 0, count: n)
        precondition(BN_bn2binpad(bn, &out, Int32(n)) == Int32(n))
        return out
    }

    private var coordinateLength: Int { kind == .p384 ? 48 : 32 }

    /// The public JWK as a JSON object text.
    var jwk: String {
        switch kind {
        case .rsa:
            return #"{"kty":"RSA","kid":"\#(kid)","n":"\#(Base64URL.encode(bignum("n")))","e":"\#(Base64URL.encode(bignum("e")))"}"#
        case .p256, .p384:
            let crv = kind == .p256 ? "P-256" : "P-384"
            return #"{"kty":"EC","kid":"\#(kid)","crv":"\#(crv)","x":"\#(Base64URL.encode(bignum("qx", pad: coordinateLength)))","y":"\#(Base64URL.encode(bignum("qy", pad: coordinateLength)))"}"#
        }
    }

    var jwks: String { #"{"keys":[\#(jwk)]}"# }

    /// A signed token. `alg` defaults to RS256 / ES256 / ES384 by key kind.
    func token(_ claims: [String: Any], alg: String? = nil, kid: String? = nil) -> String {
        let alg = alg ?? (kind == .rsa ? "RS256" : kind == .p256 ? "ES256" : "ES384")
        let header = try! JSONSerialization.data(withJSONObject: ["alg": alg, "typ": "JWT", "kid": kid ?? self.kid], options: [.sortedKeys])
        let payload = try! JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys])
        let input = Base64URL.encode([UInt8](header)) + "." + Base64URL.encode([UInt8](payload))
        return input + "." + Base64URL.encode(sign(Array(input.utf8), alg: alg))
    }

    func sign(_ data: [UInt8], alg: String) -> [UInt8] {
        let md = EVP_get_digestbyname("SHA" + alg.dropFirst(2))
        let ctx = EVP_MD_CTX_new()!
        defer { EVP_MD_CTX_free(ctx) }
        var pctx: OpaquePointer?
        precondition(EVP_DigestSignInit(ctx, &pctx, md, nil, pkey) == 1)
        if alg.hasPrefix("PS") {
            precondition(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1)
            precondition(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, -1) == 1)
        }
        var length = 0
        precondition(EVP_DigestSign(ctx, nil, &length, data, data.count) == 1)
        var sig = [UInt8](repeating: 0, count: length)
        precondition(EVP_DigestSign(ctx, &sig, &length, data, data.count) == 1)
        sig = Array(sig[..<length])
        guard kind != .rsa else { return sig }
        // DER ECDSA-Sig-Value → JWS r || s.
        var cursor: UnsafePointer<UInt8>? = sig.withUnsafeBufferPointer { $0.baseAddress }
        let parsed = sig.withUnsafeBufferPointer { buf -> OpaquePointer? in
            cursor = buf.baseAddress
            return d2i_ECDSA_SIG(nil, &cursor, buf.count)
        }!
        defer { ECDSA_SIG_free(parsed) }
        var r: OpaquePointer?, s: OpaquePointer?
        ECDSA_SIG_get0(parsed, &r, &s)
        var raw = [UInt8](repeating: 0, count: 2 * coordinateLength)
        raw.withUnsafeMutableBufferPointer { b in
            _ = BN_bn2binpad(r, b.baseAddress!, Int32(coordinateLength))
            _ = BN_bn2binpad(s, b.baseAddress! + coordinateLength, Int32(coordinateLength))
        }
        return raw
    }

    /// An unsigned token with `alg: none`.
    static func unsigned(_ claims: [String: Any]) -> String {
        let header = try! JSONSerialization.data(withJSONObject: ["alg": "none", "typ": "JWT"])
        let payload = try! JSONSerialization.data(withJSONObject: claims)
        return Base64URL.encode([UInt8](header)) + "." + Base64URL.encode([UInt8](payload)) + "."
    }
}
