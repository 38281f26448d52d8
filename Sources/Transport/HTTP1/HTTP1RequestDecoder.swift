import NIOCore
import NIOHTTP1

/// A downstream connection's request stream: heads and bodies, one message after another,
/// read off the front of the connection's bytes. An Upgrade request ends the messages:
/// whatever follows its head belongs to the tunnel, and `next` leaves it in the buffer.
package struct HTTP1RequestDecoder {
    package enum Event {
        /// A head; when its framing is `.none` or it is an Upgrade, no `.end` follows.
        case head(HTTP1RequestHeadFields)
        case body(ByteBuffer)
        /// The request is complete; trailers if its chunked body had any.
        case end(HTTPHeaders?)
        case needMoreBytes
        case failed(HTTP1ParseError)
    }

    private enum State {
        /// Before a request line; `scanned` bytes were already searched for the head's end.
        case head(scanned: Int)
        case body(HTTP1BodyDecoder)
        /// After an Upgrade request: no more HTTP on this connection.
        case upgraded
        case failed(HTTP1ParseError)
    }

    private var state = State.head(scanned: 0)
    private let maxHeadBytes: Int

    /// `maxHeadBytes` bounds a head, request line included (431 beyond), and a trailer block.
    package init(maxHeadBytes: Int) {
        self.maxHeadBytes = maxHeadBytes
    }

    /// True between requests: the next byte starts a new one.
    package var isAtMessageStart: Bool {
        if case .head(0) = state { return true }
        return false
    }

    package mutating func next(_ buffer: inout ByteBuffer) -> Event {
        switch state {
        case .failed(let e):
            return .failed(e)
        case .upgraded:
            return .needMoreBytes
        case .body(var body):
            let event = body.next(&buffer)
            switch event {
            case .data(let d): state = .body(body); return .body(d)
            case .end(let trailers): state = .head(scanned: 0); return .end(trailers)
            case .needMoreBytes: state = .body(body); return .needMoreBytes
            case .failed(let e): state = .failed(e); return .failed(e)
            }
        case .head(let scanned):
            return nextHead(&buffer, scanned: scanned)
        }
    }

    private mutating func nextHead(_ buffer: inout ByteBuffer, scanned: Int) -> Event {
        if scanned == 0 {
            Self.skipEmptyLines(&buffer)
            // A lone CR may be half of another empty line: wait for its LF.
            if buffer.readableBytes == 1, buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == HTTP1Syntax.cr {
                return .needMoreBytes
            }
        }
        let found = buffer.withUnsafeReadableBytes { HTTP1Syntax.findBlockEnd($0, from: scanned) }
        switch found {
        case .bareLF:
            return fail(.badRequest("bare LF in head"))
        case .notYet(let scanned):
            if buffer.readableBytes > maxHeadBytes { return fail(.headTooLarge) }
            state = .head(scanned: scanned)
            return .needMoreBytes
        case .found(let end):
            if end > maxHeadBytes { return fail(.headTooLarge) }
            let parsed = buffer.withUnsafeReadableBytes { bytes in
                Result { () throws(HTTP1ParseError) in
                    try HTTP1HeadParser.parseRequest(UnsafeRawBufferPointer(rebasing: bytes[0..<end]))
                }
            }
            buffer.moveReaderIndex(forwardBy: end)
            switch parsed {
            case .failure(let e):
                return fail(e)
            case .success(let head):
                if head.upgrade { state = .upgraded }
                else if head.framing == .none { state = .head(scanned: 0) }
                else { state = .body(HTTP1BodyDecoder(head.framing, maxTrailerBytes: maxHeadBytes)) }
                return .head(head)
            }
        }
    }

    private mutating func fail(_ e: HTTP1ParseError) -> Event {
        state = .failed(e)
        return .failed(e)
    }

    /// RFC 9112 §2.2: a server ignores empty lines before a request line (a client's stray
    /// CRLF after a body).
    private static func skipEmptyLines(_ buffer: inout ByteBuffer) {
        while buffer.readableBytes >= 2,
              buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == UInt16(HTTP1Syntax.cr) << 8 | UInt16(HTTP1Syntax.lf) {
            buffer.moveReaderIndex(forwardBy: 2)
        }
    }
}
