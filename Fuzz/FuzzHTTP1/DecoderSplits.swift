import NIOCore
import Transport

/// What `HTTP1RequestDecoder` makes of the bytes must not depend on how they are split into
/// reads: the events (body pieces joined) of one read and of reads of `readSize` bytes are
/// the same, and no field it accepts holds a byte a field may not hold.
func checkDecoderSplits(_ bytes: UnsafeBufferPointer<UInt8>, readSize: Int) {
    let whole = transcript(bytes, readSize: bytes.count)
    let split = transcript(bytes, readSize: max(readSize, 1))
    precondition(whole == split, "split into \(readSize)-byte reads: \(split) != \(whole)")
}

private func transcript(_ bytes: UnsafeBufferPointer<UInt8>, readSize: Int) -> [String] {
    var decoder = HTTP1RequestDecoder(maxHeadBytes: 4096)
    var buffer = ByteBuffer()
    var events: [String] = []
    var body = 0
    var offset = 0
    repeat {
        let end = min(offset + max(readSize, 1), bytes.count)
        buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[offset..<end]))
        offset = end
        reading: while true {
            switch decoder.next(&buffer) {
            case .needMoreBytes:
                break reading
            case .failed(let e):
                events.append("failed \(e.status)")
                return events
            case .head(let h):
                for (name, value) in h.headers {
                    precondition(!name.isEmpty && name.utf8.allSatisfy(HTTP1Syntax.isTokenByte), "bad name accepted")
                    precondition(value.utf8.allSatisfy(HTTP1Syntax.isFieldValueByte), "bad value accepted")
                }
                events.append("head \(h.method) \(h.target) \(h.minorVersion) \(h.headers) \(h.framing)")
                if h.upgrade { return events }
            case .body(let d):
                precondition(d.readableBytes > 0, "empty body event")
                body += d.readableBytes
            case .end(let trailers):
                events.append("end \(body) \(trailers.map { "\($0)" } ?? "-")")
                body = 0
            }
        }
    } while offset < bytes.count
    if body > 0 { events.append("partial body \(body)") }
    return events
}
