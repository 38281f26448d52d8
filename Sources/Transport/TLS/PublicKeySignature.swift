import COpenSSL

/// A public key parsed from a DER SubjectPublicKeyInfo, freed with its last reference.
/// Shared by the Lua `importPublicKey`/`verifySignature` calls and the JWT filter.
public final class PublicKey: @unchecked Sendable {
    // Immutable after init; OpenSSL allows concurrent verifications with one EVP_PKEY.
    package let pointer: OpaquePointer

    /// nil when the bytes are not a DER SubjectPublicKeyInfo.
    public init?(der: [UInt8]) {
        let key = der.withUnsafeBufferPointer { buffer -> OpaquePointer? in
            var cursor = buffer.baseAddress
            return d2i_PUBKEY(nil, &cursor, buffer.count)
        }
        guard let key else {
            ERR_clear_error()
            return nil
        }
        pointer = key
    }

    /// Shares a key someone else owns (takes a reference of its own).
    package init(retaining key: OpaquePointer) {
        EVP_PKEY_up_ref(key)
        pointer = key
    }

    deinit { EVP_PKEY_free(pointer) }

    public var isRSA: Bool { EVP_PKEY_get_base_id(pointer) == EVP_PKEY_RSA }
    public var isEC: Bool { EVP_PKEY_get_base_id(pointer) == EVP_PKEY_EC }
}

/// Signature verification over OpenSSL's EVP interface.
public enum PublicKeySignature {
    public enum Padding: Sendable {
        /// PKCS#1 v1.5 for RSA; ECDSA signatures are DER `ECDSA-Sig-Value`.
        case standard
        /// RSASSA-PSS, salt as long as the digest (JWS PS256/384/512).
        case pss
    }

    public enum Failure: Error, Equatable {
        case unsupportedDigest(String)
        case initialization
        /// OpenSSL's answer: 0 for a wrong signature, negative for a malformed one.
        case mismatch(code: Int32)
    }

    /// `digest`: SHA1, SHA224, SHA256, SHA384 or SHA512 (any case).
    public static func verify(digest: String, key: PublicKey, signature: UnsafeBufferPointer<UInt8>,
                              data: UnsafeBufferPointer<UInt8>, padding: Padding = .standard) -> Result<Void, Failure> {
        let name = digest.uppercased()
        guard ["SHA1", "SHA224", "SHA256", "SHA384", "SHA512"].contains(name), let md = EVP_get_digestbyname(name) else {
            return .failure(.unsupportedDigest(digest))
        }
        guard let ctx = EVP_MD_CTX_new() else { return .failure(.initialization) }
        defer { EVP_MD_CTX_free(ctx) }
        var pctx: OpaquePointer?
        guard EVP_DigestVerifyInit(ctx, &pctx, md, nil, key.pointer) == 1 else {
            ERR_clear_error()
            return .failure(.initialization)
        }
        if padding == .pss {
            guard key.isRSA, EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1,
                  EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, -1 /* RSA_PSS_SALTLEN_DIGEST */) == 1 else {
                ERR_clear_error()
                return .failure(.initialization)
            }
        }
        let rc = EVP_DigestVerify(ctx, signature.baseAddress, signature.count, data.baseAddress, data.count)
        ERR_clear_error()
        return rc == 1 ? .success(()) : .failure(.mismatch(code: rc))
    }
}
