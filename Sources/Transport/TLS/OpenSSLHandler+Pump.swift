import NIOCore
import MeshAPI

/// Moving bytes through the SSL object: handshake, reads, writes, shutdown, failure.
extension OpenSSLHandler {
    package func startHandshake(context: ChannelHandlerContext) {
        guard state == .idle else { return }
        advanceHandshake(context: context)
    }

    package func advanceHandshake(context: ChannelHandlerContext) {
        state = .handshaking
        switch connection.handshake() {
        case .complete:
            writeCiphertext(context: context, flush: true)  // our last flight, if any
            handshakeCompleted(context: context)
        case .wantsMore:
            writeCiphertext(context: context, flush: true)
        case .closed:
            fail(context: context, error: TLSError("handshake failed: peer sent close_notify"))
        case .failed(let error):
            fail(context: context, error: error)
        }
    }

    private func handshakeCompleted(context: ChannelHandlerContext) {
        if isClient, !expectedSubjectAltNames.isEmpty {
            let peer = connection.facts.peerCertificate
            let presented = (peer?.uriSANs ?? []) + (peer?.dnsSANs ?? [])
            guard presented.contains(where: expectedSubjectAltNames.contains) else {
                return fail(context: context, error: TLSError(
                    "peer certificate SANs \(presented) match none of \(expectedSubjectAltNames)"))
            }
        }
        if !isClient, let refusal = connection.clientCertificateRefusal {
            return fail(context: context, error: TLSError(refusal))
        }
        state = .active
        negotiatedProtocol = connection.negotiatedProtocol
        serverName = connection.serverName
        let version = connection.protocolVersion
        protocolVersion = version
        cipher = connection.cipher
        peerCertificatePresented = connection.peerCertificatePresented
        // Servers read the facts (the client's certificate) for their filters; clients need none.
        context.fireUserInboundEventTriggered(TLSHandshakeCompleted(
            negotiatedProtocol: negotiatedProtocol, serverName: serverName,
            protocolVersion: version, cipher: cipher ?? "", facts: isClient ? nil : connection.facts))
        // Writes issued during the handshake go out now, then data that came with the last flight.
        guard state == .active else { return }
        if flushedWriteCount > 0 { writeFlushedPlaintext(context: context) }
        guard state == .active else { return }
        readApplicationData(context: context)
    }

    /// Decrypts everything available, firing one channelRead per filled chunk;
    /// channelReadComplete follows from the channel as usual.
    package func readApplicationData(context: ChannelHandlerContext) {
        var chunk = context.channel.allocator.buffer(capacity: Self.readChunkSize)
        var outcome = OpenSSLConnection.Step.complete
        while state == .active {
            if chunk.writableBytes == 0 {
                context.fireChannelRead(wrapInboundOut(chunk))
                chunk = context.channel.allocator.buffer(capacity: Self.readChunkSize)
                continue  // re-check state: the read may have closed us
            }
            outcome = connection.read(into: &chunk)
            if case .complete = outcome { continue }
            break
        }
        if chunk.readableBytes > 0 && state == .active {
            context.fireChannelRead(wrapInboundOut(chunk))
        }
        guard state == .active else { return }
        switch outcome {
        case .complete, .wantsMore:
            // Reading may have produced records of our own (TLS 1.3 key update replies),
            // and writes blocked on the peer may now go through.
            if flushedWriteCount > 0 {
                writeFlushedPlaintext(context: context)
            } else {
                writeCiphertext(context: context, flush: true)
            }
        case .closed:
            peerClosed(context: context)
        case .failed(let error):
            fail(context: context, error: error)
        }
    }

    /// The peer's close_notify is EOF: the end of input (`endsInputOnCloseNotify`), else we
    /// answer with ours and close.
    private func peerClosed(context: ChannelHandlerContext) {
        guard endsInputOnCloseNotify else { return sendCloseNotifyThenClose(context: context, promise: nil) }
        guard !inputClosed else { return }
        inputClosed = true
        context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
    }

    /// Encrypts the flushed plaintext; each write's promise rides on the ciphertext write
    /// that carries its last byte, so it succeeds when that ciphertext is written.
    package func writeFlushedPlaintext(context: ChannelHandlerContext) {
        while flushedWriteCount > 0, state == .active {
            let step = connection.write(&bufferedWrites[bufferedWrites.startIndex].data)
            switch step {
            case .complete:
                let done = bufferedWrites.removeFirst()
                flushedWriteCount -= 1
                if let promise = done.promise {
                    writeCiphertext(context: context, promise: promise, flush: false)
                }
            case .wantsMore:
                // Blocked until the peer sends more (e.g. mid-renegotiation); readApplicationData retries.
                writeCiphertext(context: context, flush: true)
                return
            case .closed:
                sendCloseNotifyThenClose(context: context, promise: nil)
                return
            case .failed(let error):
                fail(context: context, error: error)
                return
            }
        }
        writeCiphertext(context: context, flush: true)
    }

    /// Passes whatever ciphertext SSL produced to the channel. With a promise an (empty)
    /// write is issued even when there is nothing, so the promise completes in order.
    package func writeCiphertext(context: ChannelHandlerContext, promise: EventLoopPromise<Void>? = nil, flush: Bool) {
        if connection.pendingCiphertext > 0 || promise != nil {
            let ciphertext = connection.takeCiphertext(allocator: context.channel.allocator)
            context.write(wrapOutboundOut(ciphertext), promise: promise)
        }
        if flush { context.flush() }
    }

    /// Sends close_notify, then closes once it is written or after `shutdownTimeout`;
    /// the peer's close_notify is not awaited.
    package func sendCloseNotifyThenClose(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        state = .closing
        addClosePromise(promise)
        failBufferedWrites(ChannelError.ioOnClosedChannel)
        connection.shutdown()
        let written = context.eventLoop.makePromise(of: Void.self)
        writeCiphertext(context: context, promise: written, flush: true)
        closeTimeout = context.eventLoop.assumeIsolated().scheduleTask(in: shutdownTimeout) {
            self.finishClose(context: context)
        }
        written.futureResult.assumeIsolated().whenComplete { _ in
            self.finishClose(context: context)
        }
    }

    private func finishClose(context: ChannelHandlerContext) {
        guard state == .closing else { return }
        state = .closed
        closeTimeout?.cancel()
        closeTimeout = nil
        let promise = closePromise
        closePromise = nil
        context.close(mode: .all, promise: promise)
    }

    package func addClosePromise(_ promise: EventLoopPromise<Void>?) {
        guard let promise else { return }
        if let existing = closePromise {
            existing.futureResult.cascade(to: promise)
        } else {
            closePromise = promise
        }
    }

    /// A fatal TLS error: tell the pipeline, send any alert OpenSSL queued, close.
    package func fail(context: ChannelHandlerContext, error: TLSError) {
        guard state != .closed else { return }
        state = .closed
        failBufferedWrites(error)
        writeCiphertext(context: context, flush: true)
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    package func failBufferedWrites(_ error: Error, onlyUnflushed: Bool = false) {
        let keep = onlyUnflushed ? flushedWriteCount : 0
        var dropped: [BufferedWrite] = []
        while bufferedWrites.count > keep {
            dropped.append(bufferedWrites.removeLast())
        }
        flushedWriteCount = min(flushedWriteCount, bufferedWrites.count)
        // Fail in write order; callbacks may re-enter, so only after the buffer is consistent.
        for write in dropped.reversed() { write.promise?.fail(error) }
    }
}
