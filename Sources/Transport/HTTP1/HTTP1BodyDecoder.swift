import NIOCore
import NIOHTTP1

/// Reads one message body off the front of a connection's bytes (RFC 9112 §6, §7.1):
/// a known length, chunked (sizes in hex, extensions skipped, trailers parsed), or until
/// the connection closes. Data comes out as slices of the input, never copied.
package struct HTTP1BodyDecoder {
    package enum Event: Equatable {
        case data(ByteBuffer)
        /// The body is complete; trailers if a chunked body had any.
        case end(HTTPHeaders?)
        case needMoreBytes
        case failed(HTTP1ParseError)
    }

    private enum State {
        case length(remaining: Int)
        case chunkSize(value: Int, digits: Int)
        /// Whitespace after the size, before `;` or CRLF.
        case chunkSizeSpace(Int)
        case chunkExtension(Int)
        case chunkSizeLF(Int)
        case chunkData(remaining: Int)
        case chunkDataCR
        case chunkDataLF
        /// After the last chunk: trailer fields up to an empty line; `scanned` resumes the search.
        case trailers(scanned: Int)
        case untilClose
        case done
        case failed(HTTP1ParseError)
    }

    private var state: State
    private let maxTrailerBytes: Int

    package init(_ framing: HTTP1BodyFraming, maxTrailerBytes: Int) {
        self.maxTrailerBytes = maxTrailerBytes
        switch framing {
        case .none: state = .done
        case .length(let n): state = n > 0 ? .length(remaining: n) : .done
        case .chunked: state = .chunkSize(value: 0, digits: 0)
        case .untilClose: state = .untilClose
        }
    }

    package var isUntilClose: Bool {
        if case .untilClose = state { return true }
        return false
    }

    /// The next event from the front of `buffer`, consuming what it reads.
    package mutating func next(_ buffer: inout ByteBuffer) -> Event {
        while true {
            switch state {
            case .done:
                return .end(nil)
            case .failed(let e):
                return .failed(e)
            case .length(let remaining):
                guard buffer.readableBytes > 0 else { return .needMoreBytes }
                let n = min(remaining, buffer.readableBytes)
                let slice = buffer.readSlice(length: n)!
                state = n == remaining ? .done : .length(remaining: remaining - n)
                return .data(slice)
            case .untilClose:
                guard buffer.readableBytes > 0 else { return .needMoreBytes }
                return .data(buffer.readSlice(length: buffer.readableBytes)!)
            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { return .needMoreBytes }
                let n = min(remaining, buffer.readableBytes)
                let slice = buffer.readSlice(length: n)!
                state = n == remaining ? .chunkDataCR : .chunkData(remaining: remaining - n)
                return .data(slice)
            case .trailers(let scanned):
                switch HTTP1Syntax.readBlock(&buffer, scanned: scanned, limit: maxTrailerBytes, HTTP1HeadParser.parseTrailers) {
                case .needMoreBytes(let scanned):
                    state = .trailers(scanned: scanned)
                    return .needMoreBytes
                case .failed(let e):
                    return fail(e)
                case .parsed(let trailers):
                    state = .done
                    return .end(trailers.isEmpty ? nil : trailers)
                }
            case .chunkSize, .chunkSizeSpace, .chunkExtension, .chunkSizeLF, .chunkDataCR, .chunkDataLF:
                guard let byte = buffer.readInteger(as: UInt8.self) else { return .needMoreBytes }
                if let e = chunkFraming(byte) { return fail(e) }
            }
        }
    }

    private mutating func fail(_ e: HTTP1ParseError) -> Event {
        state = .failed(e)
        return .failed(e)
    }

    /// One byte of a chunk's size line or of the CRLF after its data.
    private mutating func chunkFraming(_ b: UInt8) -> HTTP1ParseError? {
        switch state {
        case .chunkSize(let value, let digits):
            if let d = Self.hexValue(b) {
                // Sixteen hex digits would overflow: no body is that large.
                guard digits < 15 else { return .badRequest("chunk size too large") }
                state = .chunkSize(value: value << 4 | d, digits: digits + 1)
                return nil
            }
            guard digits > 0 else { return .badRequest("bad chunk size") }
            return afterSize(b, value)
        case .chunkSizeSpace(let size):
            if HTTP1Syntax.isWhitespace(b) { return nil }
            return afterSize(b, size)
        case .chunkExtension(let size):
            // chunk-ext: skipped, but only visible bytes and whitespace (no bare LF, no controls).
            if b == HTTP1Syntax.cr { state = .chunkSizeLF(size); return nil }
            return HTTP1Syntax.isFieldValueByte(b) ? nil : .badRequest("bad chunk extension")
        case .chunkSizeLF(let size):
            guard b == HTTP1Syntax.lf else { return .badRequest("chunk size line without LF") }
            state = size == 0 ? .trailers(scanned: 0) : .chunkData(remaining: size)
            return nil
        case .chunkDataCR:
            guard b == HTTP1Syntax.cr else { return .badRequest("chunk data without CRLF") }
            state = .chunkDataLF
            return nil
        case .chunkDataLF:
            guard b == HTTP1Syntax.lf else { return .badRequest("chunk data without CRLF") }
            state = .chunkSize(value: 0, digits: 0)
            return nil
        default:
            return nil
        }
    }

    private mutating func afterSize(_ b: UInt8, _ size: Int) -> HTTP1ParseError? {
        switch b {
        case HTTP1Syntax.cr: state = .chunkSizeLF(size)
        case UInt8(ascii: ";"): state = .chunkExtension(size)
        case HTTP1Syntax.sp, HTTP1Syntax.htab: state = .chunkSizeSpace(size)
        default: return .badRequest("bad chunk size")
        }
        return nil
    }

    @inline(__always)
    private static func hexValue(_ b: UInt8) -> Int? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(b - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(b - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(b - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }
}
