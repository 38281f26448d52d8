#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI

/// The proof of identity a proxy presents with its CSR, outside Kubernetes (where Istio uses
/// the pod's service-account JWT): `meshd1.<base64url(JSON claims)>.<base64url(HMAC-SHA256)>`,
/// keyed by a secret only the control plane holds (`token-key` in its state directory).
public struct BootstrapToken: Sendable, Equatable, Codable {
    public var trustDomain: String
    public var namespace: String
    public var serviceAccount: String
    /// Seconds since the epoch after which the token no longer proves anything.
    public var expires: Int64

    enum CodingKeys: String, CodingKey {
        case trustDomain = "td", namespace = "ns", serviceAccount = "sa", expires = "exp"
    }

    public init(trustDomain: String, namespace: String, serviceAccount: String, expires: Int64) {
        self.trustDomain = trustDomain
        self.namespace = namespace
        self.serviceAccount = serviceAccount
        self.expires = expires
    }

    static let prefix = "meshd1"

    public func signed(key: [UInt8]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let payload = Base64URL.encode(Array(try encoder.encode(self)))
        let signingInput = Self.prefix + "." + payload
        return signingInput + "." + Base64URL.encode(HMACSHA256.mac(key: key, message: Array(signingInput.utf8)))
    }

    public enum Refusal: Error, Equatable, CustomStringConvertible {
        case malformed, badSignature, expired(Int64)

        public var description: String {
            switch self {
            case .malformed: return "the token is not a meshd bootstrap token"
            case .badSignature: return "the token's signature does not verify (forged, or from another control plane)"
            case .expired(let at): return "the token expired at \(at) (epoch seconds)"
            }
        }
    }

    /// `spiffe://<td>/ns/<ns>/sa/<sa>`: the identity the token proves.
    public var spiffeID: String { "spiffe://\(trustDomain)/ns/\(namespace)/sa/\(serviceAccount)" }

    /// The claims without checking the signature: what a proxy reads from its own token to
    /// know which identity to ask for (only the control plane can verify).
    public static func unverifiedClaims(_ token: String) -> BootstrapToken? {
        let parts = token.trimmed.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == prefix, let payload = Base64URL.decode(String(parts[1])) else { return nil }
        return try? JSONDecoder().decode(BootstrapToken.self, from: Data(payload))
    }

    /// The claims of a token this key signed, if it is still valid at `now`.
    public static func verify(_ token: String, key: [UInt8], now: Date = Date()) -> Result<BootstrapToken, Refusal> {
        let parts = token.trimmed.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == prefix, let mac = Base64URL.decode(String(parts[2])),
              let payload = Base64URL.decode(String(parts[1])) else { return .failure(.malformed) }
        let expected = HMACSHA256.mac(key: key, message: Array("\(parts[0]).\(parts[1])".utf8))
        guard HMACSHA256.equal(mac, expected) else { return .failure(.badSignature) }
        guard let claims = try? JSONDecoder().decode(BootstrapToken.self, from: Data(payload)) else { return .failure(.malformed) }
        guard Int64(now.timeIntervalSince1970) < claims.expires else { return .failure(.expired(claims.expires)) }
        return .success(claims)
    }
}

/// RFC 4648 §5 base64url without padding.
package enum Base64URL {
    package static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacing("+", with: "-").replacing("/", with: "_")
            .replacing("=", with: "")
    }

    package static func decode(_ text: String) -> [UInt8]? {
        var s = text.replacing("-", with: "+").replacing("_", with: "/")
        s += String(repeating: "=", count: (4 - s.count % 4) % 4)
        return Data(base64Encoded: s).map(Array.init)
    }
}
