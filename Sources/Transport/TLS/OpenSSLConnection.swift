import COpenSSL
import NIOCore
import MeshAPI

/// One SSL object wired to two memory BIOs: the socket belongs to NIO, so ciphertext is
/// moved by hand between ByteBuffers and the BIOs. Not thread-safe; used on one event loop.
package final class OpenSSLConnection {
    /// The outcome of one SSL operation.
    package enum Step {
        case complete
        /// Needs more ciphertext from the peer (or, in theory, room to write).
        case wantsMore
        /// The peer sent close_notify.
        case closed
        case failed(TLSError)
    }

    private let ssl: OpaquePointer
    /// Ciphertext from the peer, which SSL reads.
    private let networkIn: OpaquePointer
    /// Ciphertext SSL produced, which we send.
    private let networkOut: OpaquePointer
    /// Keeps the SSL_CTX (and its ALPN callback state) alive at least as long as `ssl`.
    private let contextOwner: AnyObject

    package init(ctx: OpaquePointer, contextOwner: AnyObject, isClient: Bool) {
        OpenSSLErrorQueue.clear()
        guard let ssl = SSL_new(ctx), let input = BIO_new(BIO_s_mem()), let output = BIO_new(BIO_s_mem()) else {
            // Only fails when out of memory; nothing sensible to recover to.
            fatalError("cannot create SSL object: \(OpenSSLErrorQueue.drain(or: "out of memory"))")
        }
        // An empty memory BIO must report "retry", not EOF, so SSL asks for more data.
        _ = meshd_BIO_set_mem_eof_return(input, -1)
        _ = meshd_BIO_set_mem_eof_return(output, -1)
        SSL_set_bio(ssl, input, output)  // `ssl` owns both BIOs from here on
        if isClient { SSL_set_connect_state(ssl) } else { SSL_set_accept_state(ssl) }
        self.ssl = ssl
        self.networkIn = input
        self.networkOut = output
        self.contextOwner = contextOwner
    }

    deinit {
        SSL_free(ssl)
    }

    /// Sets SNI and, when verifying, the name the peer's certificate must match.
    /// IP literals get an IP check and no SNI (RFC 6066 forbids IPs there).
    package func configureServerName(_ name: String, verify: Bool) {
        if (try? SocketAddress(ipAddress: name, port: 0)) != nil {
            if verify { _ = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) }
            return
        }
        _ = meshd_SSL_set_tlsext_host_name(ssl, name)
        if verify {
            SSL_set_hostflags(ssl, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
            _ = SSL_set1_host(ssl, name)
        }
    }

    // MARK: Ciphertext

    /// Hands ciphertext received from the network to SSL (a memory BIO takes it all).
    package func feed(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { bytes in
            guard let base = bytes.baseAddress, bytes.count > 0 else { return }
            var written = 0
            _ = BIO_write_ex(networkIn, base, bytes.count, &written)
        }
    }

    package var pendingCiphertext: Int { Int(BIO_ctrl_pending(networkOut)) }

    /// Moves all ciphertext SSL produced into a new buffer.
    package func takeCiphertext(allocator: ByteBufferAllocator) -> ByteBuffer {
        let pending = pendingCiphertext
        var buffer = allocator.buffer(capacity: pending)
        guard pending > 0 else { return buffer }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: pending) { target in
            var read = 0
            return BIO_read_ex(networkOut, target.baseAddress, pending, &read) == 1 ? read : 0
        }
        return buffer
    }

    // MARK: SSL operations

    package func handshake() -> Step {
        OpenSSLErrorQueue.clear()
        let rc = SSL_do_handshake(ssl)
        if rc == 1 { return .complete }
        var step = classify(rc, operation: "handshake")
        if case .failed(let error) = step {
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK, let text = X509_verify_cert_error_string(verify) {
                step = .failed(TLSError("\(error.message) (certificate verification: \(String(cString: text)))"))
            }
        }
        if case .closed = step {
            step = .failed(TLSError("handshake failed: peer sent close_notify"))
        }
        return step
    }

    /// Decrypts into `buffer`'s writable space (which must be non-empty).
    /// `.complete` means some bytes were appended.
    package func read(into buffer: inout ByteBuffer) -> Step {
        OpenSSLErrorQueue.clear()
        var rc: Int32 = 0
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { target in
            var read = 0
            rc = SSL_read_ex(ssl, target.baseAddress, target.count, &read)
            return rc == 1 ? read : 0
        }
        return rc == 1 ? .complete : classify(rc, operation: "read")
    }

    /// Encrypts `buffer`'s readable bytes, consuming what was written.
    /// `.wantsMore` leaves the rest for a retry once the peer has sent more.
    package func write(_ buffer: inout ByteBuffer) -> Step {
        while buffer.readableBytes > 0 {
            OpenSSLErrorQueue.clear()
            var rc: Int32 = 0
            let written = buffer.withUnsafeReadableBytes { bytes -> Int in
                var written = 0
                rc = SSL_write_ex(ssl, bytes.baseAddress, bytes.count, &written)
                return rc == 1 ? written : 0
            }
            guard rc == 1 else { return classify(rc, operation: "write") }
            buffer.moveReaderIndex(forwardBy: written)
        }
        return .complete
    }

    /// Queues our close_notify. We never wait for the peer's, so one call is enough.
    package func shutdown() {
        OpenSSLErrorQueue.clear()
        _ = SSL_shutdown(ssl)
        OpenSSLErrorQueue.clear()
    }

    private func classify(_ rc: Int32, operation: String) -> Step {
        let code = SSL_get_error(ssl, rc)
        switch code {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            OpenSSLErrorQueue.clear()
            return .wantsMore
        case SSL_ERROR_ZERO_RETURN:
            OpenSSLErrorQueue.clear()
            return .closed
        case SSL_ERROR_SYSCALL:
            return .failed(TLSError("\(operation) failed: \(OpenSSLErrorQueue.drain(or: "unexpected end of stream"))"))
        default:
            return .failed(TLSError("\(operation) failed: \(OpenSSLErrorQueue.drain(or: "SSL error \(code)"))"))
        }
    }

    // MARK: Negotiated parameters

    package var negotiatedProtocol: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// Server: the SNI the client sent. Client: the name we asked for.
    package var serverName: String? {
        SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name).map { String(cString: $0) }
    }

    package var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    package var cipher: String {
        SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)).map { String(cString: $0) } ?? ""
    }

    package var peerCertificatePresented: Bool { SSL_get0_peer_certificate(ssl) != nil }

    /// The handshake's facts for filters; the peer's certificate is read here, once.
    package var facts: TLSConnectionFacts {
        let peer = SSL_get0_peer_certificate(ssl).flatMap { TLSCertificateFacts(x509: $0) }
        var sessionID = ""
        if let session = SSL_get_session(ssl) {
            var length: UInt32 = 0
            if let id = SSL_SESSION_get_id(session, &length), length > 0 {
                sessionID = TLSCertificateFacts.hex(UnsafeBufferPointer(start: id, count: Int(length)))
            }
        }
        let cipherID = SSL_get_current_cipher(ssl).map { SSL_CIPHER_get_protocol_id($0) } ?? 0
        // Without verification the result is X509_V_OK too: it counts only when the context asked for it.
        let verified = SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER != 0 && SSL_get_verify_result(ssl) == X509_V_OK
        return TLSConnectionFacts(version: protocolVersion, cipher: cipher, cipherID: cipherID, sessionID: sessionID,
                                  peerCertificate: peer, peerCertificateValidated: peer != nil && verified,
                                  localCertificate: serverContext?.localCertificate)
    }

    /// Server: the context this connection ended up with (the SNI entry, if the listener has several).
    package var serverContext: TLSServerContext? {
        (contextOwner as? TLSServerContext)?.selected(SSL_get_SSL_CTX(ssl))
    }

    /// Server: why the client's certificate fails the context's checks beyond its chain, or nil.
    package var clientCertificateRefusal: String? {
        serverContext?.clientCertificateChecks.refusal(SSL_get0_peer_certificate(ssl))
    }
}
