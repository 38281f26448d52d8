import NIOCore
import NIOHTTP1
import MeshAPI

/// Serialises heads and body framing into bytes (RFC 9112 §3, §4, §6, §7.1). Responses are
/// framed the way NIO's `HTTPResponseEncoder` did: no body for 1xx, 204 and 304;
/// Content-Length when the head has one; else chunked on HTTP/1.1 and until-close on 1.0.
package enum HTTP1Writer {
    /// What the writer decided; the connection keeps it for the body.
    package struct Written {
        package var framing: HTTP1BodyFraming
        /// False when a field name or value may not be sent (nothing valid was written).
        package var valid: Bool
    }

    /// Writes the status line, the fields (with `connection` replaced by `connection` when
    /// given, and the framing fields corrected) and the empty line.
    package static func writeHead(status: Int, reason: String?, minorVersion: Int, headers: HTTPHeaders,
                                  connection: StaticString?, into out: inout ByteBuffer) -> Written {
        let mayHaveBody = !(100..<200).contains(status) && status != 204 && status != 304
        var hasLength = false
        if mayHaveBody {
            for (name, _) in headers where name.utf8.count == 14 && isNamed(name, "content-length") {
                hasLength = true
                break
            }
        }
        let framing: HTTP1BodyFraming
        if !mayHaveBody { framing = .none }
        else if hasLength { framing = .length(0) }
        else if minorVersion >= 1 { framing = .chunked }
        else { framing = .untilClose }

        let start = out.writerIndex
        out.writeStaticString(minorVersion == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        guard (100...999).contains(status) else { return Written(framing: framing, valid: false) }
        out.writeInteger(UInt8(ascii: "0") + UInt8(status / 100))
        out.writeInteger(UInt8(ascii: "0") + UInt8(status / 10 % 10))
        out.writeInteger(UInt8(ascii: "0") + UInt8(status % 10))
        out.writeInteger(HTTP1Syntax.sp)
        out.writeString(reasonPhrase(status: status, reason: reason))
        out.writeStaticString("\r\n")
        for (name, value) in headers {
            if skips(name, framing: framing, replacingConnection: connection != nil) { continue }
            guard writeField(name, value, into: &out) else {
                out.moveWriterIndex(to: start)
                return Written(framing: framing, valid: false)
            }
        }
        if let connection {
            out.writeStaticString("connection: ")
            out.writeStaticString(connection)
            out.writeStaticString("\r\n")
        }
        if framing == .chunked { out.writeStaticString("transfer-encoding: chunked\r\n") }
        out.writeStaticString("\r\n")
        return Written(framing: framing, valid: true)
    }

    /// The fields the writer sets itself: framing ones that contradict `framing`, and
    /// `connection` when it is replaced.
    private static func skips(_ name: String, framing: HTTP1BodyFraming, replacingConnection: Bool) -> Bool {
        switch name.utf8.count {
        case 10: return replacingConnection && isNamed(name, "connection")
        case 14: return framing == .none && isNamed(name, "content-length")
        // A length wins over chunked; chunked is written once, by the writer.
        case 17: return isNamed(name, "transfer-encoding") && framing != .untilClose
        default: return false
        }
    }

    /// A body chunk of a chunked body: size line, data, CRLF.
    package static func writeChunk(_ data: ByteBuffer, into out: inout ByteBuffer) {
        writeChunkSize(data.readableBytes, into: &out)
        out.writeImmutableBuffer(data)
        out.writeStaticString("\r\n")
    }

    package static func writeChunkSize(_ size: Int, into out: inout ByteBuffer) {
        var digits = 1
        while size >> (4 * digits) != 0 { digits += 1 }
        for i in stride(from: digits - 1, through: 0, by: -1) {
            let d = UInt8((size >> (4 * i)) & 0xF)
            out.writeInteger(d < 10 ? UInt8(ascii: "0") + d : UInt8(ascii: "a") + d - 10)
        }
        out.writeStaticString("\r\n")
    }

    /// The last chunk and the trailers (valid ones only; NIO's validator refused the rest).
    package static func writeLastChunk(trailers: HTTPHeaders?, into out: inout ByteBuffer) -> Bool {
        out.writeStaticString("0\r\n")
        for (name, value) in trailers ?? [:] {
            guard writeField(name, value, into: &out) else { return false }
        }
        out.writeStaticString("\r\n")
        return true
    }

    /// A request head for an upstream: the engine's fields, then `host` from the authority,
    /// then the framing: the head's own Content-Length; else `content-length: 0` for a
    /// body-less POST, PUT or PATCH; else chunked when a body follows. An Upgrade request's
    /// body is the tunnel, written as it comes (`.untilClose`).
    package static func writeRequestHead(_ head: RequestHead, endStream: Bool, upgrade: Bool,
                                         into out: inout ByteBuffer) -> Written {
        let hasLength = head.headers.contains(name: "content-length")
        let framing: HTTP1BodyFraming
        if upgrade { framing = .untilClose }
        else if hasLength { framing = .length(0) }
        else if endStream { framing = .none }
        else { framing = .chunked }
        let start = out.writerIndex
        var method = head.method, path = head.path
        let requestLine = method.withUTF8 { m in
            path.withUTF8 { p in
                guard !m.isEmpty, m.allSatisfy(HTTP1Syntax.isTokenByte), !p.isEmpty, p.allSatisfy(HTTP1Syntax.isTargetByte) else {
                    return false
                }
                out.writeBytes(m)
                out.writeInteger(HTTP1Syntax.sp)
                out.writeBytes(p)
                out.writeStaticString(" HTTP/1.1\r\n")
                return true
            }
        }
        guard requestLine else { return Written(framing: framing, valid: false) }
        for (name, value) in head.headers {
            switch name.utf8.count {
            case 4 where isNamed(name, "host"): continue
            case 17 where !upgrade && isNamed(name, "transfer-encoding"): continue
            default: break
            }
            guard writeField(name, value, into: &out) else {
                out.moveWriterIndex(to: start)
                return Written(framing: framing, valid: false)
            }
        }
        guard writeField("host", head.authority, into: &out) else {
            out.moveWriterIndex(to: start)
            return Written(framing: framing, valid: false)
        }
        if framing == .none, announcesEmptyBody(head.method) { out.writeStaticString("content-length: 0\r\n") }
        if framing == .chunked { out.writeStaticString("transfer-encoding: chunked\r\n") }
        out.writeStaticString("\r\n")
        return Written(framing: framing, valid: true)
    }

    /// Methods whose empty body is still announced (`content-length: 0`); a switch, not an
    /// array literal, since this runs for every request.
    private static func announcesEmptyBody(_ method: String) -> Bool {
        switch method {
        case "POST", "PUT", "PATCH": return true
        default: return false
        }
    }

    /// `name: value` CRLF, when both may be sent. Checked and copied as contiguous bytes,
    /// not walked through the strings' UTF-8 views byte by byte (once to check, once to copy).
    private static func writeField(_ name: String, _ value: String, into out: inout ByteBuffer) -> Bool {
        var name = name, value = value
        return name.withUTF8 { n in
            value.withUTF8 { v in
                guard !n.isEmpty, n.allSatisfy(HTTP1Syntax.isTokenByte), v.allSatisfy(HTTP1Syntax.isFieldValueByte) else {
                    return false
                }
                out.writeBytes(n)
                out.writeStaticString(": ")
                out.writeBytes(v)
                out.writeStaticString("\r\n")
                return true
            }
        }
    }

    /// The given phrase when it may be sent, else the standard one for the code.
    private static func reasonPhrase(status: Int, reason: String?) -> String {
        if let reason, !reason.isEmpty, reason.utf8.allSatisfy({ $0 == HTTP1Syntax.htab || ($0 >= 32 && $0 != 127) }) {
            return reason
        }
        return HTTPResponseStatus(statusCode: status).reasonPhrase
    }

    private static func isNamed(_ name: String, _ lowercase: StaticString) -> Bool {
        var name = name
        return name.withUTF8 { HTTP1Syntax.equalsLowercased(UnsafeRawBufferPointer($0), lowercase) }
    }
}
