@testable import FilterHost
import NIOCore
import NIOHTTP1
import XCTest
import Transport

/// Records what leaves a chain, the way `HTTPStream` is a chain's ends.
private final class RecordingEnds: FilterChainEnds {
    var log: [String] = []
    var onResponseHeaders: (() -> Void)?

    func requestHeadersPassed(_ head: RequestHead, endStream: Bool) { log.append("request headers \(head.path)") }
    func requestDataPassed(_ data: ByteBuffer, endStream: Bool) { log.append("request data") }
    func requestTrailersPassed(_ trailers: HTTPHeaders) { log.append("request trailers") }
    func responseHeadersPassed(_ head: ResponseHead, endStream: Bool) {
        log.append("response headers \(head.status)")
        onResponseHeaders?()
    }
    func responseDataPassed(_ data: ByteBuffer, endStream: Bool) { log.append("response data") }
    func responseTrailersPassed(_ trailers: HTTPHeaders) { log.append("response trailers") }
    func bodyOverflowed(_ side: ChainSide) { log.append("overflow \(side)") }
    func pressureChanged(_ side: ChainSide, _ pressed: Bool) { log.append("pressure \(side) \(pressed)") }
}

/// Stops the request headers (as a Lua filter waiting on an httpCall does) and counts completions.
private final class HoldingFilter: HTTPFilter {
    var completions = 0
    func onRequestHeaders(_ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus { .stop }
    func onStreamComplete() { completions += 1 }
}

private final class PassingFilter: HTTPFilter {
    var seen: [String] = []
    func onRequestHeaders(_ head: inout RequestHead, endStream: Bool) -> FilterHeadersStatus {
        seen.append("request")
        return .continue
    }
    func onResponseHeaders(_ head: inout ResponseHead, endStream: Bool) -> FilterHeadersStatus {
        seen.append("response")
        return .continue
    }
}

final class FilterChainReuseTests: XCTestCase {
    private func head(_ path: String) -> RequestHead {
        RequestHead(method: "GET", scheme: "http", authority: "x", path: path, headers: [:], version: .http11)
    }

    func testACompletedChainServesTheNextStreamAndAStaleResumeDoesNothing() {
        let first = RecordingEnds(), holder = HoldingFilter()
        let chain = FilterChain(filters: [holder], bufferLimit: 1 << 20, ends: first)
        chain.receiveRequest(.headers(head("/one"), end: true))
        XCTAssertFalse(chain.isReusable, "a running stream's chain is not handed out")
        chain.complete()
        XCTAssertEqual(holder.completions, 1)
        XCTAssertTrue(chain.isReusable)

        let second = RecordingEnds(), passer = PassingFilter()
        chain.reuse(bufferLimit: 1 << 20, ends: second) { $0.append(passer) }
        XCTAssertEqual(chain.filters.count, 1)
        XCTAssertTrue(chain.filters[0] === passer)
        // The first stream's filter answers late (its httpCall came back): the new stream does not move.
        chain.continueRequest(from: holder)
        XCTAssertEqual(second.log, [])

        chain.receiveRequest(.headers(head("/two"), end: true))
        chain.receiveResponse(.headers(ResponseHead(status: 200), end: true))
        XCTAssertEqual(second.log, ["request headers /two", "response headers 200"])
        XCTAssertEqual(passer.seen, ["request", "response"])
        XCTAssertEqual(first.log, [], "nothing of the second stream reaches the first one's ends")
        chain.complete()
        XCTAssertEqual(holder.completions, 1, "the first stream's filter is told once")
    }

    func testAChainCompletedWhileItDeliversIsNotReusableUntilTheDeliveryReturns() {
        let ends = RecordingEnds()
        let chain = FilterChain(filters: [PassingFilter()], bufferLimit: 1 << 20, ends: ends)
        var reusableDuringDelivery: Bool?
        // The stream finishes from inside the chain's last delivery, as HTTPStream does on
        // the response's end; a pipelined request could ask for a chain right then.
        ends.onResponseHeaders = {
            chain.complete()
            reusableDuringDelivery = chain.isReusable
        }
        chain.receiveRequest(.headers(head("/"), end: true))
        chain.receiveResponse(.headers(ResponseHead(status: 204), end: true))
        XCTAssertEqual(reusableDuringDelivery, false)
        XCTAssertTrue(chain.isReusable)
    }

    func testALocalReplyRunsThroughTheFiltersAfterItsSenderOnAReusedChain() {
        let ends = RecordingEnds()
        let chain = FilterChain(filters: [], bufferLimit: 1 << 20, ends: ends)
        chain.complete()
        let outer = PassingFilter(), sender = HoldingFilter()
        chain.reuse(bufferLimit: 1 << 20, ends: ends) { $0 += [outer, sender] as [HTTPFilter] }
        chain.receiveRequest(.headers(head("/"), end: true))
        chain.sendLocalReply(status: 403, body: "", headers: [:], from: sender)
        XCTAssertEqual(ends.log, ["response headers 403"])
        XCTAssertEqual(outer.seen, ["request", "response"])
    }
}
