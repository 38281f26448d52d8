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
