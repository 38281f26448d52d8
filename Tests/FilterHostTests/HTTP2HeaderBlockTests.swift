import CNghttp2
import NIOCore
import NIOHTTP1
import XCTest
import Transport

/// The HTTP/2 codec's small pieces: the encoder of outgoing header blocks and the queue
/// of body buffers behind the data provider.
final class HTTP2HeaderBlockTests: XCTestCase {
    private func fields(_ encoder: HTTP2HeaderEncoder) -> [String] {
        encoder.withNVs { nva, count in
            (0..<count).map { i in
                let nv = nva![i]
                let name = String(decoding: UnsafeBufferPointer(start: nv.name, count: nv.namelen), as: UTF8.self)
                let value = String(decoding: UnsafeBufferPointer(start: nv.value, count: nv.valuelen), as: UTF8.self)
                return "\(name): \(value)"
            }
        }
    }

    func testResponseBlockHasStatusAndLowercasedNamesWithoutConnectionFields() {
        let encoder = HTTP2HeaderEncoder()
        for status in [100, 200, 404, 503, 999, 42, 1000] {
            encoder.reset()
            encoder.addStatus(status)
            XCTAssertEqual(fields(encoder), [":status: \(status)"])
        }
        encoder.reset()
        encoder.addStatus(200)
        encoder.addResponseHeaders(["Content-Type": "Text/Plain", "Connection": "keep-alive", "TE": "trailers",
                                    "X-A-Header-Name-Longer-Than-Fifteen": "Value Kept As Is, Longer Than Fifteen"])
        XCTAssertEqual(fields(encoder), [":status: 200", "content-type: Text/Plain",
                                         "x-a-header-name-longer-than-fifteen: Value Kept As Is, Longer Than Fifteen"])
    }

    func testBodyQueueKeepsOrderAcrossPartialTakes() {
        var queue = OutboundBodyQueue()
        XCTAssertNil(queue.first)
        for text in ["one", "two", "three"] { queue.append(ByteBuffer(string: text)) }
        queue.consumeFromFirst(1)
        XCTAssertEqual(queue.first.map { String(buffer: $0) }, "ne")
        queue.removeFirst()
        queue.append(ByteBuffer(string: "four"))
        var seen: [String] = []
        while let first = queue.first {
            seen.append(String(buffer: first))
            queue.removeFirst()
        }
        XCTAssertEqual(seen, ["two", "three", "four"])
        queue.append(ByteBuffer(string: "five"))
        queue.append(ByteBuffer(string: "six"))
        queue.removeAll()
        XCTAssertNil(queue.first)
        queue.append(ByteBuffer(string: "seven"))
        XCTAssertEqual(queue.first.map { String(buffer: $0) }, "seven")
    }
}
