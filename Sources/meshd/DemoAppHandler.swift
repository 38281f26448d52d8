import MeshAPI
import NIOCore
import NIOHTTP1

/// The demo service's request handling; see `DemoAppCommand` for the paths.
final class DemoAppHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    struct Calls: Sendable {
        let services: [String]
        let outbound: (String, Int)
    }

    private let service: String
    private let calls: Calls
    private var head: HTTPRequestHead?
    private var received = 0
    private var echoing = false
    private var remaining = 0

    init(service: String, calls: Calls) {
        self.service = service
        self.calls = calls
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            received = 0
            echoing = h.uri.hasPrefix("/echo")
            if echoing {
                var headers = HTTPHeaders([("content-type", "application/octet-stream")])
                if let len = h.headers.first(name: "content-length") { headers.add(name: "content-length", value: len) }
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: .ok, headers: headers))), promise: nil)
            }
        case .body(let b):
            received += b.readableBytes
            if echoing { context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(b))), promise: nil) }
        case .end:
            guard let h = head else { return }
            if echoing { context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil); return }
            respond(context: context, h)
        }
    }

    private func respond(context: ChannelHandlerContext, _ h: HTTPRequestHead) {
        let parts = h.uri.split(separator: "?")[0].split(separator: "/").map(String.init)
        switch parts.first {
        case "sink":
            send(context, .ok, "\(received)\n")
        case "status":
            send(context, HTTPResponseStatus(statusCode: Int(parts.dropFirst().first ?? "") ?? 200), "")
        case "delay":
            let ms = Int64(parts.dropFirst().first ?? "") ?? 0
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .milliseconds(ms)) {
                bound.value.0.send(bound.value.1, .ok, "delayed \(ms)\n")
            }
        case "reset":
            context.close(promise: nil)
        case "bytes":
            remaining = Int(parts.dropFirst().first ?? "") ?? 0
            let headers = HTTPHeaders([("content-length", "\(remaining)"), ("content-type", "application/octet-stream")])
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: .ok, headers: headers))), promise: nil)
            pump(context)
        case _ where !calls.services.isEmpty:
            respondWithCalls(context: context, h)
        default:
            var lines = h.headers.map { "    \"\($0.name.lowercased())\": \"\($0.value.replacing("\"", with: "\\\""))\"" }
            lines.sort()
            let body = "{\n  \"service\": \"\(service)\",\n  \"path\": \"\(h.uri)\",\n  \"method\": \"\(h.method.rawValue)\",\n"
                + "  \"headers\": {\n" + lines.joined(separator: ",\n") + "\n  }\n}\n"
            send(context, .ok, body, type: "application/json")
        }
    }

    /// Calls every configured service through the mesh and answers with what each said.
    private func respondWithCalls(context: ChannelHandlerContext, _ h: HTTPRequestHead) {
        let loop = context.eventLoop
        let futures = calls.services.map { name in
            DemoAppCalls.call(service: name, path: "/", via: calls.outbound, incoming: h.headers, on: loop)
                .map { (name, $0) }
        }
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        EventLoopFuture.whenAllComplete(futures, on: loop).whenSuccess { results in
            var parts: [String] = []
            for case .success(let (name, r)) in results {
                let headers = r.headers.filter { $0.0.hasPrefix("x-") }.map { "\"\($0.0)\": \"\($0.1)\"" }
                    .joined(separator: ", ")
                let inner = r.body.trimmed
                let body = inner.hasPrefix("{") ? inner : "\"\(inner.replacing("\"", with: "'"))\""
                parts.append("    \"\(name)\": {\"status\": \(r.status), \"headers\": {\(headers)}, \"body\": \(body)}")
            }
            let (me, ctx) = bound.value
            let text = "{\n  \"service\": \"\(me.service)\",\n  \"calls\": {\n" + parts.joined(separator: ",\n") + "\n  }\n}\n"
            me.send(ctx, .ok, text, type: "application/json")
        }
    }

    /// Streams `remaining` bytes, writing only while the channel is writable.
    private func pump(_ context: ChannelHandlerContext) {
        let chunk = ByteBuffer(repeating: UInt8(ascii: "x"), count: 64 * 1024)
        while remaining > 0, context.channel.isWritable {
            let n = min(remaining, chunk.readableBytes)
            remaining -= n
            context.write(wrapOutboundOut(.body(.byteBuffer(chunk.getSlice(at: 0, length: n)!))), promise: nil)
        }
        if remaining == 0 {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            head = nil
        } else {
            context.flush()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, remaining > 0 { pump(context) }
        context.fireChannelWritabilityChanged()
    }

    private func send(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ body: String, type: String = "text/plain") {
        let headers = HTTPHeaders([("content-length", "\(body.utf8.count)"), ("content-type", type), ("x-service", service)])
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if !body.isEmpty { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}
