@testable import FilterHost
import NIOCore
import NIOHTTP1
import XCTest
import Transport
import LuaRuntime
import Filters
import PluginTesting

/// A filter whose answers are scripted per call, recording what it saw.
private final class ScriptedFilter: HTTPFilter {
    var headerStatus: FilterHeadersStatus = .continue
    var dataStatuses: [FilterDataStatus] = []
    var seen: [String] = []
    var onHeaders: (() -> Void)?

    func onRequestHeaders(_ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus {
        seen.append("headers")
        head.headers.add(name: "x-seen", value: "1")
        onHeaders?()
        return headerStatus
    }

    func onRequestData(_ data: inout ByteBuffer, endStream: Bool) -> FilterDataStatus {
        seen.append("data:\(data.readableBytes):\(endStream)")
        return dataStatuses.isEmpty ? .continue : dataStatuses.removeFirst()
    }

    func onRequestTrailers(_ trailers: inout HTTPHeaders) -> FilterHeadersStatus {
        seen.append("trailers")
        return .continue
    }
}

final class FilterIteratorTests: XCTestCase {
    private var sunk: [String] = []
    private var overflowed = false

    private func iterator(_ filters: [HTTPFilter], limit: Int = 1 << 20) -> FilterIterator<RequestDirection> {
        FilterIterator(filters: filters, bufferLimit: limit, sink: FilterSink(
            headers: { [unowned self] h, end in sunk.append("headers:\(h.headers.first(name: "x-seen") ?? "-"):\(end)") },
            data: { [unowned self] d, end in sunk.append("data:\(d.readableBytes):\(end)") },
            trailers: { [unowned self] _ in sunk.append("trailers") },
            overflow: { [unowned self] in overflowed = true },
            pressure: { _ in }))
    }

    private let head = RequestHead(method: "GET", scheme: "http", authority: "x", path: "/", headers: [:], version: .http11)

    func testEventsPassInOrderAndHeadersCanBeModified() {
        let f = ScriptedFilter()
        let it = iterator([f])
        it.receive(.headers(head, end: false))
        it.receive(.data(ByteBuffer(string: "abc"), end: false))
        it.receive(.trailers(["t": "1"]))
        XCTAssertEqual(sunk, ["headers:1:false", "data:3:false", "trailers"])
        XCTAssertEqual(f.seen, ["headers", "data:3:false", "trailers"])
    }

    func testStoppedHeadersHoldLaterEventsUntilResumed() {
        let a = ScriptedFilter(), b = ScriptedFilter()
        a.headerStatus = .stop
        let it = iterator([a, b])
        it.receive(.headers(head, end: false))
        it.receive(.data(ByteBuffer(string: "12345"), end: true))
        XCTAssertEqual(sunk, [])
        XCTAssertEqual(b.seen, [])
        it.resume(from: b)  // only the filter that stopped can resume
        XCTAssertEqual(sunk, [])
        it.resume(from: a)
        XCTAssertEqual(sunk, ["headers:1:false", "data:5:true"])
        XCTAssertEqual(a.seen, ["headers", "data:5:true"])
        XCTAssertEqual(b.seen, ["headers", "data:5:true"])
    }

    func testResumeFromInsideTheCallbackIsNotLost() {
        let a = ScriptedFilter()
        a.headerStatus = .stop
        let it = iterator([a])
        a.onHeaders = { [unowned it, unowned a] in it.resume(from: a) }
        it.receive(.headers(head, end: true))
        XCTAssertEqual(sunk, ["headers:1:true"])
    }

    func testStopAndBufferSeesWholeBodyOnce() {
        let a = ScriptedFilter(), b = ScriptedFilter()
        a.dataStatuses = [.stopAndBuffer, .continue]
        let it = iterator([a, b])
        it.receive(.headers(head, end: false))
        it.receive(.data(ByteBuffer(string: "hello"), end: false))
        it.receive(.data(ByteBuffer(string: "world"), end: false))
        XCTAssertEqual(b.seen, ["headers"])
        it.receive(.data(ByteBuffer(), end: true))
        XCTAssertEqual(a.seen, ["headers", "data:5:false", "data:10:true"])
        XCTAssertEqual(b.seen, ["headers", "data:10:true"])
        XCTAssertEqual(sunk, ["headers:1:false", "data:10:true"])
    }

    func testTrailersEndABufferedBody() {
        let a = ScriptedFilter()
        a.dataStatuses = [.stopAndBuffer, .continue]
        let it = iterator([a])
        it.receive(.headers(head, end: false))
        it.receive(.data(ByteBuffer(string: "abcd"), end: false))
        it.receive(.trailers(["grpc-status": "0"]))
        XCTAssertEqual(a.seen, ["headers", "data:4:false", "data:4:true", "trailers"])
        XCTAssertEqual(sunk, ["headers:1:false", "data:4:false", "trailers"])
    }

    func testBufferOverLimitOverflows() {
        let a = ScriptedFilter()
        a.dataStatuses = [.stopAndBuffer, .stopAndBuffer, .stopAndBuffer]
        let it = iterator([a], limit: 8)
        it.receive(.headers(head, end: false))
        it.receive(.data(ByteBuffer(string: "12345"), end: false))
        XCTAssertFalse(overflowed)
        it.receive(.data(ByteBuffer(string: "67890"), end: false))
        XCTAssertTrue(overflowed)
        it.receive(.data(ByteBuffer(string: "more"), end: true))
        XCTAssertEqual(sunk, ["headers:1:false"])
    }

    func testAbortDropsEverything() {
        let a = ScriptedFilter()
        a.headerStatus = .stop
        let it = iterator([a])
        it.receive(.headers(head, end: false))
        it.abort()
        it.resume(from: a)
        it.receive(.data(ByteBuffer(string: "x"), end: true))
        XCTAssertEqual(sunk, [])
    }
}

/// `.stop` on a body chunk, and replacing held data on resume.
final class FilterIteratorDataStopTests: XCTestCase {
    private var sunk: [String] = []

    private func iterator(_ filters: [HTTPFilter]) -> FilterIterator<RequestDirection> {
        FilterIterator(filters: filters, bufferLimit: 1 << 20, sink: FilterSink(
            headers: { [unowned self] _, end in sunk.append("headers:\(end)") },
            data: { [unowned self] d, end in sunk.append("data:\(String(buffer: d)):\(end)") },
            trailers: { [unowned self] _ in sunk.append("trailers") },
            overflow: {}, pressure: { _ in }))
    }

    private let head = RequestHead(method: "POST", scheme: "http", authority: "x", path: "/", headers: [:], version: .http11)

    func testStoppedChunkHoldsWhatFollowsAndCanBeReplaced() {
        let a = ScriptedFilter()
        a.dataStatuses = [.stop]
        let it = iterator([a])
        it.receive(.headers(head, end: false))
        it.receive(.data(ByteBuffer(string: "one"), end: false))
        it.receive(.data(ByteBuffer(string: "two"), end: true))
        XCTAssertEqual(sunk, ["headers:false"])
        XCTAssertEqual(a.seen, ["headers", "data:3:false"])
        it.resume(from: a, replacingData: ByteBuffer(string: "ONE!"))
        XCTAssertEqual(sunk, ["headers:false", "data:ONE!:false", "data:two:true"])
        XCTAssertEqual(a.seen, ["headers", "data:3:false", "data:3:true"])
    }

    func testWatcherCanReplaceTheBodyParkedBehindItsHeaders() {
        let a = ScriptedFilter()
        a.headerStatus = .stopIteration
        a.dataStatuses = [.stopAndBuffer]
        let it = iterator([a])
        it.receive(.headers(head, end: false))
        it.receive(.data(ByteBuffer(string: "ab"), end: false))
        it.receive(.data(ByteBuffer(string: "cd"), end: true))
        XCTAssertEqual(sunk, [])
        XCTAssertEqual(a.seen, ["headers", "data:2:false", "data:4:true"])
        var edited = head
        edited.path = "/edited"
        it.resume(from: a, replacingHead: edited, replacingData: ByteBuffer(string: "whole new body"))
        XCTAssertEqual(sunk, ["headers:false", "data:whole new body:true"])
    }
}
