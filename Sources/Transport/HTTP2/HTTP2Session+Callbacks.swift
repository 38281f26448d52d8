import CNghttp2
import MeshAPI

/// The nghttp2 callbacks. Each is a non-capturing closure (a C function pointer);
/// user_data is the HTTP2Session, unretained (the session outlives nghttp2's use of it).
extension HTTP2Session {
    @inline(__always)
    package static func from(_ userData: UnsafeMutableRawPointer?) -> HTTP2Session {
        Unmanaged<HTTP2Session>.fromOpaque(userData!).takeUnretainedValue()
    }

    package static func installCallbacks(_ callbacks: OpaquePointer) {
        // Serialized non-DATA frames (and DATA frame headers nghttp2 writes itself).
        nghttp2_session_callbacks_set_send_callback(callbacks) { _, data, length, _, userData in
            HTTP2Session.from(userData).appendOutput(UnsafeRawBufferPointer(start: data, count: length))
            return length
        }

        // DATA with NGHTTP2_DATA_FLAG_NO_COPY: we write the 9-byte header and copy the
        // payload straight from the stream's queue (one copy, no nghttp2 buffer).
        nghttp2_session_callbacks_set_send_data_callback(callbacks) { _, _, header, length, source, userData in
            let session = HTTP2Session.from(userData)
            let stream = Unmanaged<HTTP2StreamBase>.fromOpaque(source!.pointee.ptr).takeUnretainedValue()
            session.reserveOutput(9 + length)
            session.appendOutput(UnsafeRawBufferPointer(start: header, count: 9))
            stream.writeQueuedData(length, to: session)
            // Past the budget: make nghttp2_session_send return so the buffer gets written.
            return session.outputSize >= HTTP2Session.outputBudget ? H2.errPause : 0
        }

        // Every frame header, before its payload. HEADERS and DATA are counted where their
        // padding is known (below), as Envoy does.
        nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks) { _, header, userData in
            let session = HTTP2Session.from(userData)
            guard let header, header.pointee.type != H2.headers, header.pointee.type != H2.data else { return 0 }
            session.countInboundFrame(type: header.pointee.type, flags: header.pointee.flags, payload: header.pointee.length)
            return 0
        }

        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, userData in
            let session = HTTP2Session.from(userData)
            guard !session.freePending, let frame else { return 0 }
            let streamID = frame.pointee.hd.stream_id
            session.headerBlockBytes = 0
            session.countInboundFrame(type: H2.headers, flags: frame.pointee.hd.flags,
                                      payload: frame.pointee.hd.length - frame.pointee.headers.padlen)
            session.owner.sessionBeganHeaderBlock(streamID)
            if frame.pointee.headers.cat == H2.hcatRequest {
                if let stream = session.owner.sessionOpensStream(streamID) { session.register(stream) }
            } else {
                session.stream(streamID)?.headerBlock.reset()
            }
            return 0
        }

        nghttp2_session_callbacks_set_on_header_callback(callbacks) { _, frame, name, nameLength, value, valueLength, _, userData in
            let session = HTTP2Session.from(userData)
            // Counted before anything else: past the hard limit nghttp2 resets the stream and
            // skips the rest of the block (no more validation or callbacks for it).
            session.headerBlockBytes += nameLength + valueLength + 32
            if session.headerBlockBytes > session.headerBlockHardLimit { return H2.errTemporalCallbackFailure }
            guard let frame, let stream = session.stream(frame.pointee.hd.stream_id) else { return 0 }
            stream.headerBlock.add(name: UnsafeBufferPointer(start: name, count: nameLength),
                                   value: UnsafeBufferPointer(start: value, count: valueLength),
                                   limit: session.maxHeaderListSize)
            return 0
        }

        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { raw, _, streamID, data, length, userData in
            let session = HTTP2Session.from(userData)
            if !session.freePending, let stream = session.stream(streamID), let data {
                stream.dataChunk(session.inputBytes(data, length))
            } else {
                // Nobody will read it: give the window back right away.
                _ = nghttp2_session_consume(raw, streamID, length)
            }
            return 0
        }

        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            let session = HTTP2Session.from(userData)
            guard !session.freePending, let frame else { return 0 }
            let header = frame.pointee.hd
            switch header.type {
            case H2.data:
                session.countInboundFrame(type: H2.data, flags: header.flags, payload: header.length - frame.pointee.data.padlen)
                session.stream(header.stream_id)?.dataFrameEnded(endStream: header.flags & H2.flagEndStream != 0)
            case H2.headers:
                if let stream = session.stream(header.stream_id) {
                    session.owner.sessionReceivedHeaders(stream, endStream: header.flags & H2.flagEndStream != 0)
                }
            default:
                session.owner.sessionReceivedControlFrame(frame)
            }
            return 0
        }

        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks) { _, frame, userData in
            let session = HTTP2Session.from(userData)
            guard let frame else { return 0 }
            let header = frame.pointee.hd
            switch header.type {
            case H2.data, H2.headers:
                if header.type == H2.data { session.floodCounter?.dataFrameSent() }
                if header.flags & H2.flagEndStream != 0 { session.stream(header.stream_id)?.localEnded = true }
            case H2.rstStream:
                session.stream(header.stream_id)?.sentResetCode = frame.pointee.rst_stream.error_code
            default:
                session.owner.sessionSentControlFrame(frame)
            }
            return 0
        }

        // A request HEADERS that never opened its stream (GOAWAY received, cancelled before
        // being sent): nghttp2 will not call on_stream_close for it, so close it here.
        nghttp2_session_callbacks_set_on_frame_not_send_callback(callbacks) { _, frame, _, userData in
            let session = HTTP2Session.from(userData)
            guard let frame, frame.pointee.hd.type == H2.headers else { return 0 }
            let streamID = frame.pointee.hd.stream_id
            if session.stream(streamID) == nil, let stream = session.streams.removeValue(forKey: streamID) {
                stream.sessionClosed()
                session.owner.sessionClosedStream(stream, errorCode: H2.refusedStream)
            }
            return 0
        }

        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, userData in
            let session = HTTP2Session.from(userData)
            if let stream = session.streams.removeValue(forKey: streamID) {
                stream.sessionClosed()
                session.owner.sessionClosedStream(stream, errorCode: errorCode)
            }
            return 0
        }
    }
}
