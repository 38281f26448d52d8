import NIOHTTP1
import MeshAPI

/// Accumulates one received header block (request, response or trailers) as
/// nghttp2 hands it over field by field. nghttp2 has already validated the
/// block (pseudo-header order, lowercase names, no connection headers).
package struct HTTP2HeaderCollector {
    package var method = ""
    package var scheme = ""
    package var authority: String?
    package var path = ""
    package var status = 0
    package var host: String?
    package var cookies: [String] = []
    /// Regular fields as pairs, wrapped in `HTTPHeaders` once: `HTTPHeaders.add` checks each
    /// name for ASCII and for `connection`, which nghttp2 has already refused.
    private var fields: [(String, String)] = []
    /// RFC 9113 §6.5.2 size: name + value + 32 per field.
    package private(set) var size = 0
    package private(set) var tooLarge = false

    package mutating func reset() {
        self = HTTP2HeaderCollector()
    }

    package mutating func add(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>, limit: Int) {
        size += name.count + value.count + 32
        if size > limit { tooLarge = true }
        // Keep counting but stop storing once over the limit: the block is refused anyway.
        if tooLarge { return }
        let valueString = String(decoding: value, as: UTF8.self)
        if name.first == UInt8(ascii: ":") {
            if Self.equals(name, ":method") { method = valueString }
            else if Self.equals(name, ":path") { path = valueString }
            else if Self.equals(name, ":scheme") { scheme = valueString }
            else if Self.equals(name, ":authority") { authority = valueString }
            else if Self.equals(name, ":status") { status = Int(valueString) ?? 0 }
            // Other pseudo-headers (e.g. :protocol) are not used by the engine.
            return
        }
        if Self.equals(name, "host") {
            host = valueString
        } else if Self.equals(name, "cookie") {
            // HTTP/2 allows cookie crumbs in separate fields (RFC 9113 §8.2.3).
            cookies.append(valueString)
        } else {
            if fields.isEmpty { fields.reserveCapacity(Self.initialFieldCapacity) }
            fields.append((String(decoding: name, as: UTF8.self), valueString))
        }
    }

    /// Regular headers with the cookie crumbs joined back into one field.
    package mutating func takeHeaders() -> HTTPHeaders {
        if !cookies.isEmpty {
            fields.append(("cookie", cookies.joined(separator: "; ")))
            cookies = []
        }
        let result = HTTPHeaders(fields)
        fields = []
        return result
    }

    /// Room for a usual request's fields plus the few the engine adds (x-forwarded-for,
    /// x-forwarded-proto, x-request-id), so the array is allocated once, not grown.
    static var initialFieldCapacity: Int { 12 }

    package mutating func takeRequestHead() -> RequestHead {
        RequestHead(method: method, scheme: scheme, authority: authority ?? host ?? "",
                    path: path, headers: takeHeaders(), version: .http2)
    }

    @inline(__always)
    package static func equals(_ bytes: UnsafeBufferPointer<UInt8>, _ literal: StaticString) -> Bool {
        guard bytes.count == literal.utf8CodeUnitCount else { return false }
        let other = UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        return bytes.elementsEqual(other)
    }
}
