import CNghttp2
import NIOCore
import NIOHTTP1
import MeshAPI

/// Frame submission and flow-control helpers. nghttp2 only queues here; `flush` sends.
extension HTTP2Session {
    /// The stream object nghttp2 carries as stream user data (unretained; `streams` owns it).
    @inline(__always)
    package func stream(_ streamID: Int32) -> HTTP2StreamBase? {
        guard let raw, let pointer = nghttp2_session_get_stream_user_data(raw, streamID) else { return nil }
        return Unmanaged<HTTP2StreamBase>.fromOpaque(pointer).takeUnretainedValue()
    }

    /// Tracks a stream the peer opened (server side).
    package func register(_ stream: HTTP2StreamBase) {
        guard let raw else { return }
        streams[stream.streamID] = stream
        nghttp2_session_set_stream_user_data(raw, stream.streamID, Unmanaged.passUnretained(stream).toOpaque())
    }

    /// A provider whose callback pulls from the stream's outbound queue.
    private func dataProvider(for stream: HTTP2StreamBase) -> nghttp2_data_provider {
        var provider = nghttp2_data_provider()
        provider.source.ptr = Unmanaged.passUnretained(stream).toOpaque()
        provider.read_callback = { _, _, _, length, flags, source, _ in
            let stream = Unmanaged<HTTP2StreamBase>.fromOpaque(source!.pointee.ptr).takeUnretainedValue()
            return stream.provideData(maxLength: length, flags: flags!)
        }
        return provider
    }

    /// Final response HEADERS; with a body the stream's queue feeds the DATA frames.
    @discardableResult
    package func submitResponse(_ stream: HTTP2StreamBase, status: Int, headers: HTTPHeaders, withBody: Bool) -> Bool {
        guard let raw else { return false }
        encoder.reset()
        encoder.addStatus(status)
        encoder.addResponseHeaders(headers)
        var provider = dataProvider(for: stream)
        let rv = encoder.withNVs { nva, count in
            withBody
                ? nghttp2_submit_response(raw, stream.streamID, nva, count, &provider)
                : nghttp2_submit_response(raw, stream.streamID, nva, count, nil)
        }
        return rv == 0
    }

    /// A 1xx head: HEADERS without END_STREAM, before the final response.
    package func submitInformational(_ stream: HTTP2StreamBase, status: Int, headers: HTTPHeaders) {
        guard let raw else { return }
        encoder.reset()
        encoder.addStatus(status)
        encoder.addResponseHeaders(headers)
        _ = encoder.withNVs { nva, count in
            nghttp2_submit_headers(raw, H2.flagNone, stream.streamID, nil, nva, count, nil)
        }
    }

    /// Request HEADERS; returns the new stream id, or a negative nghttp2 error.
    package func submitRequest(_ stream: HTTP2StreamBase, head: RequestHead, withBody: Bool) -> Int32 {
        guard let raw else { return -1 }
        encoder.reset()
        encoder.addRequest(head)
        var provider = dataProvider(for: stream)
        let userData = Unmanaged.passUnretained(stream).toOpaque()
        return encoder.withNVs { nva, count in
            withBody
                ? nghttp2_submit_request(raw, nil, nva, count, &provider, userData)
                : nghttp2_submit_request(raw, nil, nva, count, nil, userData)
        }
    }

    /// Trailing HEADERS with END_STREAM; false when nothing was left to send as trailers.
    package func submitTrailers(_ stream: HTTP2StreamBase, _ trailers: HTTPHeaders) -> Bool {
        guard let raw else { return false }
        encoder.reset()
        encoder.addResponseHeaders(trailers)
        return encoder.withNVs { nva, count in
            count > 0 && nghttp2_submit_trailer(raw, stream.streamID, nva, count) == 0
        }
    }

    package func submitReset(_ streamID: Int32, errorCode: UInt32) {
        guard let raw, streamID > 0 else { return }
        _ = nghttp2_submit_rst_stream(raw, H2.flagNone, streamID, errorCode)
    }

    package func resumeData(_ streamID: Int32) {
        guard let raw else { return }
        _ = nghttp2_session_resume_data(raw, streamID)
    }

    /// Returns flow-control credit for bytes the consumer accepted (or we dropped).
    package func consume(_ stream: HTTP2StreamBase, _ count: Int) {
        guard let raw, count > 0 else { return }
        if stream.closed {
            // The stream is gone; only the connection window still owes the credit.
            _ = nghttp2_session_consume_connection(raw, count)
        } else {
            _ = nghttp2_session_consume(raw, stream.streamID, count)
        }
        scheduleFlush()
    }
}
