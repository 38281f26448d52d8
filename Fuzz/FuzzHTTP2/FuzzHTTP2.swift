import FuzzSupport

// HTTP/2 through nghttp2 into the engine: the input follows the client connection preface on
// a cleartext listener (prior knowledge), so it is the client's frames — SETTINGS, HEADERS
// with HPACK blocks, DATA, RST_STREAM, WINDOW_UPDATE, PRIORITY, GOAWAY... — as nghttp2's server
// session, HTTP2ServerCodec's callbacks, its flood limits and the engine's streams (routing,
// filters, local replies) see them. The first byte gives the read size (0: all at once).

nonisolated(unsafe) private let engine = FuzzEngine()
private let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    guard size > 0 else { return 0 }
    let chunk = Int(data[0] >> 2)
    let input = preface + UnsafeBufferPointer(start: data + 1, count: size - 1)
    input.withUnsafeBufferPointer { engine.serve($0, chunk: chunk) }
    return 0
}
