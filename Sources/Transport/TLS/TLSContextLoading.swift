import COpenSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
import MeshAPI
#endif

/// Loads certificates and keys into an SSL_CTX; every failure names the file.
package enum TLSContextLoading {
    /// OpenSSL's own messages for a missing file are cryptic ("BIO routines::no such file"),
    /// so open it first to report the OS's reason.
    package static func checkReadable(_ path: String, operation: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw TLSConfigurationError(operation: operation, file: path, reason: reason)
        }
        close(fd)
    }

    package static func useCertificateChain(_ ctx: OpaquePointer, file: String) throws {
        let operation = "cannot load certificate chain from"
        try checkReadable(file, operation: operation)
        OpenSSLErrorQueue.clear()
        guard SSL_CTX_use_certificate_chain_file(ctx, file) == 1 else {
            throw TLSConfigurationError(operation: operation, file: file,
                                        reason: OpenSSLErrorQueue.drain(or: "no certificate found"))
        }
    }

    package static func usePrivateKey(_ ctx: OpaquePointer, file: String, certificateFile: String) throws {
        let operation = "cannot load private key from"
        try checkReadable(file, operation: operation)
        OpenSSLErrorQueue.clear()
        let loaded = SSL_CTX_use_PrivateKey_file(ctx, file, SSL_FILETYPE_PEM) == 1
        // Loading already compares the key with the certificate; report that case as a mismatch.
        let lastError = ERR_peek_last_error()
        let mismatch = ERR_GET_LIB(lastError) == ERR_LIB_X509 && ERR_GET_REASON(lastError) == X509_R_KEY_VALUES_MISMATCH
        guard loaded || mismatch else {
            throw TLSConfigurationError(operation: operation, file: file,
                                        reason: OpenSSLErrorQueue.drain(or: "no private key found"))
        }
        guard loaded, SSL_CTX_check_private_key(ctx) == 1 else {
            throw TLSConfigurationError(
                operation: "private key from \(file) does not match certificate in", file: certificateFile,
                reason: OpenSSLErrorQueue.drain(or: "key mismatch"))
        }
    }

    package static func loadVerifyFile(_ ctx: OpaquePointer, file: String) throws {
        let operation = "cannot load CA certificates from"
        try checkReadable(file, operation: operation)
        OpenSSLErrorQueue.clear()
        guard SSL_CTX_load_verify_file(ctx, file) == 1 else {
            throw TLSConfigurationError(operation: operation, file: file,
                                        reason: OpenSSLErrorQueue.drain(or: "no certificates found"))
        }
    }

    /// A certificate (its chain) and its key, from files or PEM text. Called once per key
    /// type: OpenSSL keeps an RSA and an ECDSA certificate side by side.
    package static func useCertificate(_ ctx: OpaquePointer, _ certificate: TLSKeyPair) throws {
        switch (certificate.chain, certificate.key) {
        case let (.file(chain), .file(key)):
            try useCertificateChain(ctx, file: chain)
            try usePrivateKey(ctx, file: key, certificateFile: chain)
        case (.file, .pem), (.pem, .file):
            throw TLSConfigurationError(operation: "a certificate and its key must both be files or both be PEM text",
                                        reason: "mixed")
        case let (.pem(chainPEM), .pem(keyPEM)):
            let chain: [X509Certificate]
            let key: PrivateKey
            do {
                chain = try X509Certificate.chain(pem: chainPEM)
                key = try PrivateKey(pem: keyPEM)
            } catch {
                throw TLSConfigurationError(operation: "cannot read the certificate or key", reason: "\(error)")
            }
            guard let leaf = chain.first else {
                throw TLSConfigurationError(operation: "cannot load certificate chain", reason: "no certificate found")
            }
            OpenSSLErrorQueue.clear()
            guard SSL_CTX_use_certificate(ctx, leaf.pointer) == 1 else {
                throw TLSConfigurationError(operation: "cannot use certificate", reason: OpenSSLErrorQueue.drain(or: "unknown"))
            }
            for intermediate in chain.dropFirst() where meshd_SSL_CTX_add1_chain_cert(ctx, intermediate.pointer) != 1 {
                throw TLSConfigurationError(operation: "cannot add chain certificate", reason: OpenSSLErrorQueue.drain(or: "unknown"))
            }
            guard leaf.matches(key), SSL_CTX_use_PrivateKey(ctx, key.pointer) == 1, SSL_CTX_check_private_key(ctx) == 1 else {
                throw TLSConfigurationError(operation: "the private key does not match the certificate",
                                            reason: OpenSSLErrorQueue.drain(or: "key mismatch"))
            }
        }
    }

    /// Peers must verify against `ca`; with `advertise` (a server asking for client
    /// certificates) its subjects are the CertificateRequest's list.
    package static func trust(_ ctx: OpaquePointer, _ ca: TLSMaterial, advertise: Bool) throws {
        switch ca {
        case .file(let file):
            try loadVerifyFile(ctx, file: file)
            if advertise, let names = SSL_load_client_CA_file(file) { SSL_CTX_set_client_CA_list(ctx, names) }
        case .pem(let pem):
            let certificates = (try? X509Certificate.chain(pem: pem)) ?? []
            guard !certificates.isEmpty, let store = SSL_CTX_get_cert_store(ctx) else {
                throw TLSConfigurationError(operation: "cannot load CA certificates", reason: "no certificates found")
            }
            for c in certificates {
                guard X509_STORE_add_cert(store, c.pointer) == 1, !advertise || SSL_CTX_add_client_CA(ctx, c.pointer) == 1 else {
                    throw TLSConfigurationError(operation: "cannot load CA certificates", reason: OpenSSLErrorQueue.drain(or: "unknown"))
                }
            }
        }
    }

    package static func setMaximumVersion(_ ctx: OpaquePointer, _ version: TLSVersion) throws {
        guard meshd_SSL_CTX_set_max_proto_version(ctx, version.openSSLValue) == 1 else {
            throw TLSConfigurationError(operation: "cannot set maximum TLS version", reason: OpenSSLErrorQueue.drain(or: "unsupported"))
        }
    }

    /// Fails when OpenSSL knows none of the names; unknown names among known ones are skipped.
    package static func setCipherList(_ ctx: OpaquePointer, _ list: String) throws {
        OpenSSLErrorQueue.clear()
        guard SSL_CTX_set_cipher_list(ctx, list) == 1 else {
            throw TLSConfigurationError(operation: "no usable cipher suite in", file: list,
                                        reason: OpenSSLErrorQueue.drain(or: "no cipher match"))
        }
    }

    /// Settings both sides share: version floor, no compression or renegotiation, and
    /// write modes that suit memory BIOs driven from ByteBuffers (which may move between retries).
    package static func applyDefaults(_ ctx: OpaquePointer, minimumVersion: TLSVersion) throws {
        _ = meshd_SSL_CTX_set_options(ctx, meshd_SSL_OP_defaults())
        _ = meshd_SSL_CTX_set_mode(ctx, meshd_SSL_MODE_defaults())
        guard meshd_SSL_CTX_set_min_proto_version(ctx, minimumVersion.openSSLValue) == 1 else {
            throw TLSConfigurationError(operation: "cannot set minimum TLS version",
                                        reason: OpenSSLErrorQueue.drain(or: "unsupported"))
        }
    }

    package static func newContext(_ method: OpaquePointer?) throws -> OpaquePointer {
        OpenSSLErrorQueue.clear()
        guard let ctx = SSL_CTX_new(method) else {
            throw TLSConfigurationError(operation: "cannot create SSL_CTX",
                                        reason: OpenSSLErrorQueue.drain(or: "out of memory"))
        }
        return ctx
    }
}

/// OpenSSL's cipher names, for checking config before it reaches a proxy.
public enum TLSCipherSuites {
    /// Whether OpenSSL knows `name` as a TLS 1.2 (or lower) cipher suite.
    public static func isKnown(_ name: String) -> Bool {
        guard !name.isEmpty, !name.contains(":"), let ctx = SSL_CTX_new(TLS_server_method()) else { return false }
        defer {
            SSL_CTX_free(ctx)
            OpenSSLErrorQueue.clear()
        }
        return SSL_CTX_set_cipher_list(ctx, name) == 1
    }
}
