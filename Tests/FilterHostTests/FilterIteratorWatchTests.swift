@testable import FilterHost
import NIOCore
import NIOHTTP1
import XCTest
import Transport
import LuaRuntime
import Filters
import PluginTesting

/// `.stopIteration`: the filter holding the headers keeps seeing the body; everything it
/// lets through waits behind the headers until it resumes, in order.
final class FilterIteratorWatchTests: XCTestCase {
    private final class Watcher: HTTPFilter {
        var seen: [String] = []
        var dataStatus: FilterDataStatus = .continue
        func onRequestHeaders(_ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus {
            seen.append("headers")
            return .stopIteration
        }
        func onRequestData(_ data: inout ByteBuffer, endStream: Bool) -> FilterDataStatus {
            seen.append("data:\(data.readableBytes):\(endStream)")
            return dataStatus
        }
        func onRequestTrailers(_ trailers: inout HTTPHeaders) -> FilterHeadersStatus {
            seen.append("trailers")
            return .continue
        }
    }

    private func iterator(_ filters: [HTTPFilter], _ out: @escaping (String) -> Void) -> FilterIterator<RequestDirection> {
        FilterIterator(filters: filters, bufferLimit: 1 << 20, sink: FilterSink(
            headers: { h, _ in out("headers:\(h.path)") },
            data: { d, end in out("data:\(d.readableBytes):\(end)") },
            trailers: { _ in out("trailers") }, overflow: { out("overflow") }, pressure: { _ in }))
    }

    private let head = RequestHead(method: "POST", scheme: "http", authority: "a", path: "/old", headers: [:], version: .http11)

    func testWatcherSeesDataWhileHeadersWaitThenAllGoInOrder() {
        let w = Watcher()
        var out: [String] = []
        let it = iterator([w]) { out.append($0) }
        it.receive(.headers(head, end: false))
        it.receive(.data(ByteBuffer(string: "ab"), end: false))
        it.receive(.trailers([:]))
        XCTAssertEqual(w.seen, ["headers", "data:2:false", "trailers"])
        XCTAssertEqual(out, [])
        var edited = head
        edited.path = "/new"
        it.resume(from: w, replacingHead: edited)
        XCTAssertEqual(out, ["headers:/new", "data:2:false", "trailers"])
    }

    func testWatcherBuffersBodyAndResumesFromItsCallback() {
        let w = Watcher()
        w.dataStatus = .stopAndBuffer
        var out: [String] = []
        let it = iterator([w]) { out.append($0) }
        it.receive(.headers(head, end: false))
        it.receive(.data(ByteBuffer(string: "abc"), end: false))
        XCTAssertEqual(w.seen, ["headers", "data:3:false"])
        w.dataStatus = .continue
        it.receive(.data(ByteBuffer(string: "de"), end: true))
        XCTAssertEqual(w.seen, ["headers", "data:3:false", "data:5:true"])
        XCTAssertEqual(out, [])
        it.resume(from: w)
        XCTAssertEqual(out, ["headers:/old", "data:5:true"])
    }

    /// A watcher that makes a body for a message that had none: it follows the headers,
    /// which no longer end the stream (and goes before trailers already parked).
    func testWatcherMakesABodyWhereThereWasNone() {
        let w = Watcher()
        var ends: [Bool] = []
        var out: [String] = []
        let it = FilterIterator<RequestDirection>(filters: [w], bufferLimit: 1 << 20, sink: FilterSink(
            headers: { _, end in out.append("headers"); ends.append(end) },
            data: { d, end in out.append("data:\(d.readableBytes):\(end)") },
            trailers: { _ in out.append("trailers") }, overflow: {}, pressure: { _ in }))
        it.receive(.headers(head, end: true))
        it.resume(from: w, replacingHead: nil, replacingData: ByteBuffer(string: "ok"))
        XCTAssertEqual(out, ["headers", "data:2:true"])
        XCTAssertEqual(ends, [false])

        out = []
        let w2 = Watcher()
        let it2 = iterator([w2]) { out.append($0) }
        it2.receive(.headers(head, end: false))
        it2.receive(.trailers([:]))
        it2.resume(from: w2, replacingHead: nil, replacingData: ByteBuffer(string: "abc"))
        XCTAssertEqual(out, ["headers:/old", "data:3:false", "trailers"])
    }
}
