import CNghttp2
import NIOHTTP1
import MeshAPI

/// Builds nghttp2_nv arrays for outgoing header blocks. One instance per
/// connection: its byte and nv arrays keep their capacity, so encoding a
/// block does not allocate once warmed up. nghttp2 copies the fields during
/// submit, so the storage is reusable right after.
package final class HTTP2HeaderEncoder {
    private var bytes: [UInt8] = []
    private var spans: [(name: Int, nameLength: Int, value: Int, valueLength: Int)] = []
    private var nvs: [nghttp2_nv] = []

    package init() {
        bytes.reserveCapacity(1024)
        spans.reserveCapacity(16)
        nvs.reserveCapacity(16)
    }

    package func reset() {
        bytes.removeAll(keepingCapacity: true)
        spans.removeAll(keepingCapacity: true)
    }

    /// Appends one field; names are lowercased as HTTP/2 requires.
    package func add(_ name: String, _ value: String) {
        let nameStart = bytes.count
        // Native strings (all of a parsed head's) are copied from their contiguous bytes.
        if name.utf8.withContiguousStorageIfAvailable({ appendLowercased($0) }) == nil {
            appendLowercased(name.utf8)
        }
        let valueStart = bytes.count
        if value.utf8.withContiguousStorageIfAvailable({ bytes.append(contentsOf: $0) }) == nil {
            bytes.append(contentsOf: value.utf8)
        }
        spans.append((nameStart, valueStart - nameStart, valueStart, bytes.count - valueStart))
    }

    private func appendLowercased<C: Collection<UInt8>>(_ name: C) {
        for byte in name {
            bytes.append(byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte)
        }
    }

    package func addStatus(_ status: Int) {
        guard status >= 100, status <= 999 else { return add(":status", String(status)) }
        // Three digits written in place: no String made for the status of every response.
        let nameStart = bytes.count
        let name: StaticString = ":status"
        bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        let valueStart = bytes.count
        bytes.append(UInt8(ascii: "0") + UInt8(status / 100))
        bytes.append(UInt8(ascii: "0") + UInt8(status / 10 % 10))
        bytes.append(UInt8(ascii: "0") + UInt8(status % 10))
        spans.append((nameStart, valueStart - nameStart, valueStart, 3))
    }

    /// Regular headers of a response or trailer block, minus connection-specific ones.
    package func addResponseHeaders(_ headers: HTTPHeaders) {
        for (name, value) in headers where !Self.isConnectionSpecific(name) && !Self.isNamed(name, "te") {
            add(name, value)
        }
    }

    /// Pseudo-headers from the head plus its regular headers; `te: trailers` passes.
    package func addRequest(_ head: RequestHead) {
        add(":method", head.method)
        if head.method != "CONNECT" {
            add(":scheme", head.scheme.isEmpty ? "http" : head.scheme)
            add(":path", head.path.isEmpty ? "/" : head.path)
        }
        if !head.authority.isEmpty { add(":authority", head.authority) }
        for (name, value) in head.headers where !Self.isConnectionSpecific(name) {
            if Self.isNamed(name, "te") && !Self.isNamed(value, "trailers") { continue }
            add(name, value)
        }
    }

    /// Calls `body` with the nv array for everything added since `reset()`.
    package func withNVs<R>(_ body: (UnsafePointer<nghttp2_nv>?, Int) -> R) -> R {
        let flags = UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
        return bytes.withUnsafeMutableBufferPointer { storage in
            nvs.removeAll(keepingCapacity: true)
            guard let base = storage.baseAddress else { return body(nil, 0) }
            for span in spans {
                nvs.append(nghttp2_nv(name: base + span.name, value: base + span.value,
                                      namelen: span.nameLength, valuelen: span.valueLength, flags: flags))
            }
            return nvs.withUnsafeBufferPointer { body($0.baseAddress, $0.count) }
        }
    }

    /// Hop-by-hop headers HTTP/2 forbids (RFC 9113 §8.2.2); `host` becomes :authority.
    package static func isConnectionSpecific(_ name: String) -> Bool {
        switch name.utf8.count {
        case 4: return isNamed(name, "host")
        case 7: return isNamed(name, "upgrade")
        case 10: return isNamed(name, "connection") || isNamed(name, "keep-alive")
        case 16: return isNamed(name, "proxy-connection")
        case 17: return isNamed(name, "transfer-encoding")
        default: return name.utf8.first == UInt8(ascii: ":")
        }
    }

    /// ASCII case-insensitive comparison against a lowercase literal.
    package static func isNamed(_ name: String, _ lowercase: StaticString) -> Bool {
        guard name.utf8.count == lowercase.utf8CodeUnitCount else { return false }
        var index = 0
        for byte in name.utf8 {
            let lowered = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
            if lowered != lowercase.utf8Start[index] { return false }
            index += 1
        }
        return true
    }
}
