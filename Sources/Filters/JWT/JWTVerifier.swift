#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
import Transport

/// Why a token was refused, with Envoy's jwt_authn status text (the 401 body).
enum JWTFailure: Error, Equatable {
    case badFormat, badHeader, badAlg, badPayload, badSignatureEncoding
    case unknownIssuer, expired, notYetValid, audienceNotAllowed, noMatchingKey, verificationFails, jwksUnavailable

    var message: String {
        switch self {
        case .badFormat: "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
        case .badHeader: "Jwt header is an invalid JSON"
        case .badAlg: "Jwt header [alg] field value is invalid"
        case .badPayload: "Jwt payload is an invalid JSON"
        case .badSignatureEncoding: "Jwt signature is an invalid Base64url encoded"
        case .unknownIssuer: "Jwt issuer is not configured"
        case .expired: "Jwt is expired"
        case .notYetValid: "Jwt not yet valid"
        case .audienceNotAllowed: "Audiences in Jwt are not allowed"
        case .noMatchingKey: "Jwks doesn't have key to match kid or alg from Jwt"
        case .verificationFails: "Jwt verification fails"
        case .jwksUnavailable: "Jwks remote fetch is failed"
        }
    }

    /// Envoy answers a wrong audience with 403 and every other failure with 401.
    var status: Int { self == .audienceNotAllowed ? 403 : 401 }
}

/// A token split and decoded, not yet trusted.
struct JWT {
    static let algorithms: Set<String> = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]

    let alg: String
    let kid: String?
    let claims: [String: JSONValue]
    let signingInput: Substring
    let signature: [UInt8]

    init(_ token: String) throws(JWTFailure) {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw .badFormat }
        guard let headerBytes = Base64URL.decode(String(parts[0])),
              let header = try? JSONDecoder().decode(JSONValue.self, from: Data(headerBytes)), header.objectValue != nil else {
            throw .badHeader
        }
        // `alg: none` and HMAC algorithms have no public key: refused like any unknown name.
        guard let alg = header["alg"]?.stringValue, Self.algorithms.contains(alg) else { throw .badAlg }
        guard let payloadBytes = Base64URL.decode(String(parts[1])),
              let payload = try? JSONDecoder().decode(JSONValue.self, from: Data(payloadBytes)), let claims = payload.objectValue else {
            throw .badPayload
        }
        guard let signature = Base64URL.decode(String(parts[2])) else { throw .badSignatureEncoding }
        self.alg = alg
        self.kid = header["kid"]?.stringValue
        self.claims = claims
        self.signingInput = token[parts[0].startIndex..<parts[1].endIndex]
        self.signature = signature
    }

    var issuer: String? { claims["iss"]?.stringValue }
    var subject: String? { claims["sub"]?.stringValue }

    /// `aud` as a list (a single string is a list of one).
    var audiences: [String] {
        switch claims["aud"] {
        case .string(let s): [s]
        case .array(let a): a.compactMap(\.stringValue)
        default: []
        }
    }

    func number(_ claim: String) -> Double? {
        if case .number(let n) = claims[claim] { return n }
        return nil
    }

    /// Envoy's order: time constraints (60 s clock skew), audiences, then the signature.
    func verify(with provider: JWTProvider, now: Double) throws(JWTFailure) {
        let skew = 60.0
        if let exp = number("exp"), now > exp + skew { throw .expired }
        if let nbf = number("nbf"), now + skew < nbf { throw .notYetValid }
        if !provider.audiences.isEmpty && !audiences.contains(where: provider.audiences.contains) {
            throw .audienceNotAllowed
        }
        let keys = provider.verificationKeys
        guard !keys.isEmpty else { throw .jwksUnavailable }
        let candidates = keys.filter { (kid == nil || $0.kid == nil || $0.kid == kid) && $0.accepts(alg: alg) }
        guard !candidates.isEmpty else { throw .noMatchingKey }
        for key in candidates where verifySignature(key) { return }
        throw .verificationFails
    }

    private func verifySignature(_ key: JWK) -> Bool {
        let digest = "SHA" + alg.dropFirst(2)
        var sig = signature
        if case .ec(let curve) = key.type {
            guard sig.count == 2 * curve.coordinateLength else { return false }
            sig = PublicKeyDER.ecdsaSignature(raw: sig)
        }
        let padding: PublicKeySignature.Padding = alg.hasPrefix("PS") ? .pss : .standard
        let input = Array(signingInput.utf8)
        let result = sig.withUnsafeBufferPointer { s in
            input.withUnsafeBufferPointer { d in
                PublicKeySignature.verify(digest: digest, key: key.key, signature: s, data: d, padding: padding)
            }
        }
        if case .success = result { return true }
        return false
    }
}
