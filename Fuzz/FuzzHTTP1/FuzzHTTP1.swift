import FuzzSupport
import MeshAPI
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Transport

// HTTP/1 codecs. The first input byte picks the side and how the rest is split into reads:
//   bit 0 clear: server — the bytes are what a client sent to a cleartext listener, through
//     protocol selection and HTTP1ServerConnection (meshd's own HTTP/1 codec) into engine
//     streams (header sanitizing, routing, the Lua and header-mutation filters, local
//     replies); and the request decoder alone must read them the same in any split;
//   bit 0 set: client — the bytes are an upstream's answer to a request HTTP1ClientConnection
//     sent (bits 1-2 pick its method: GET, HEAD, POST with a body, an Upgrade).
// Bits 3-7 give the read size (0: all at once). After the reads the clock jumps past every
// timeout, so timer paths run too.

nonisolated(unsafe) private let engine = FuzzEngine()

func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    guard size > 0 else { return 0 }
    let control = data[0]
    let bytes = UnsafeBufferPointer(start: data + 1, count: size - 1)
    let chunk = Int(control >> 3)
    if control & 1 == 0 {
        engine.serve(bytes, chunk: chunk)
        checkDecoderSplits(bytes, readSize: chunk)
    } else {
        clientExchange(bytes, method: Int(control >> 1) & 3, chunk: chunk)
    }
    return 0
}

/// Records what the connection hands up, and checks the order it comes in.
private final class ResponseRecorder: UpstreamResponseHandler {
    private enum State { case waitingHead, body, done }
    private var state = State.waitingHead

    func upstreamHead(_ head: ResponseHead, endStream: Bool) {
        precondition(state == .waitingHead || (100..<200).contains(head.status), "head after head")
        state = endStream ? .done : .body
    }
    func upstreamData(_ data: ByteBuffer, endStream: Bool) {
        precondition(state == .body, "data outside a body")
        if endStream { state = .done }
    }
    func upstreamTrailers(_ trailers: HTTPHeaders) {
        precondition(state == .body, "trailers outside a body")
        state = .done
    }
    func upstreamWritabilityChanged(_ writable: Bool) {}
    func upstreamFailed(_ failure: UpstreamFailure) { state = .done }
}

private func clientExchange(_ bytes: UnsafeBufferPointer<UInt8>, method: Int, chunk: Int) {
    let loop = EmbeddedEventLoop()
    let channel = EmbeddedChannel(loop: loop)
    let timers = LoopTimers(eventLoop: loop)
    let connection = HTTP1ClientConnection(idleTimeout: .seconds(60), timers: timers)
    do {
        try channel.pipeline.syncOperations.addHandler(connection)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 80)).wait()
    } catch {
        fatalError("pipeline setup: \(error)")
    }
    let recorder = ResponseRecorder()
    if let request = connection.startStream(handler: recorder) {
        var headers: HTTPHeaders = ["user-agent": "fuzz"]
        let names = ["GET", "HEAD", "POST", "GET"]
        if method == 3 { headers.add(name: "connection", value: "upgrade"); headers.add(name: "upgrade", value: "websocket") }
        let head = RequestHead(method: names[method], scheme: "http", authority: "upstream", path: "/", headers: headers,
                               version: .http11)
        request.sendHead(head, endStream: method != 2)
        if method == 2 { request.sendData(ByteBuffer(string: "body"), endStream: true) }
    }
    feed(bytes, chunk: chunk, into: channel)
    loop.advanceTime(by: .hours(1))
    _ = try? channel.finish()
    loop.advanceTime(by: .hours(1))
    // Tasks still queued (timers, close callbacks) hold the channel, which holds the loop.
    try? loop.syncShutdownGracefully()
}
