import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import XCTest
import Transport
import LuaRuntime
import Filters
import PluginTesting
@testable import FilterHost

/// Test engine: echoes the request body under a 200 with `x-echo-path`.
/// Special paths: `/trailers` sends "hi" then `grpc-status: 0`; `/reset` resets the
/// stream; `/shutdown` starts a graceful shutdown of the connection, then echoes.
final class EchoFactory: DownstreamStreamFactory {
    weak var codec: HTTP2ServerCodec?
    let log: EventLog

    init(log: EventLog) { self.log = log }

    func makeStream(downstream: DownstreamStream) -> DownstreamStreamEvents {
        EchoStream(downstream: downstream, factory: self)
    }
}

/// What the echo engines saw, readable from the test thread.
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var heads = 0
    private var resets = 0

    func recordHead() { lock.lock(); heads += 1; lock.unlock() }
    func recordReset() { lock.lock(); resets += 1; lock.unlock() }
    var counts: (heads: Int, resets: Int) { lock.lock(); defer { lock.unlock() }; return (heads, resets) }

    /// Polls `condition` for up to `seconds`.
    func eventually(_ seconds: Double = 5, _ condition: ((heads: Int, resets: Int)) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(counts) { return true }
            usleep(10_000)
        }
        return condition(counts)
    }
}

final class EchoStream: DownstreamStreamEvents {
    private weak var downstream: DownstreamStream?
    private let factory: EchoFactory
    private var path = ""

    init(downstream: DownstreamStream, factory: EchoFactory) {
        self.downstream = downstream
        self.factory = factory
    }

    func receiveHead(_ head: RequestHead, endStream: Bool) {
        guard let downstream else { return }
        factory.log.recordHead()
        path = head.path
        switch head.path {
        case "/trailers":
            downstream.sendResponseHead(ResponseHead(status: 200, headers: ["content-type": "text/plain"]), endStream: false)
            downstream.sendResponseData(ByteBuffer(string: "hi"), endStream: false)
            downstream.sendResponseTrailers(["grpc-status": "0"])
            return
        case "/reset":
            downstream.reset()
            return
        case "/shutdown":
            factory.codec?.startGracefulShutdown()
        default:
            break
        }
        let headers: HTTPHeaders = ["x-echo-path": head.path, "connection": "keep-alive"]
        downstream.sendResponseHead(ResponseHead(status: 200, headers: headers), endStream: endStream)
    }

    func receiveData(_ data: ByteBuffer, endStream: Bool) {
        guard let downstream, path != "/trailers" else { return }
        downstream.sendResponseData(data, endStream: endStream)
        // Backpressure: stop reading the request while the response side is full.
        if !downstream.isWritable { downstream.setRequestReadingPaused(true) }
    }

    func receiveTrailers(_ trailers: HTTPHeaders) {
        downstream?.sendResponseData(ByteBuffer(), endStream: true)
    }

    func streamWritabilityChanged(_ writable: Bool) {
        if writable { downstream?.setRequestReadingPaused(false) }
    }

    func downstreamReset() {
        factory.log.recordReset()
    }
}

/// An HTTP2ServerCodec + EchoFactory server on 127.0.0.1, on its own one-thread group.
final class EchoServer {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let channel: Channel
    let port: Int
    let log = EventLog()

    init(settings: HTTP2ServerSettings = .init()) throws {
        let log = self.log
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let factory = EchoFactory(log: log)
                    let info = ConnectionInfo(remoteAddress: channel.remoteAddress, localAddress: channel.localAddress)
                    let codec = HTTP2ServerCodec(factory: factory, connectionInfo: info, settings: settings)
                    factory.codec = codec
                    try channel.pipeline.syncOperations.addHandler(codec)
                }
            }
        do {
            channel = try bootstrap.bind(host: "127.0.0.1", port: 0).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        port = channel.localAddress!.port!
    }

    var url: String { "http://127.0.0.1:\(port)" }

    func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a command with a hard time limit; output goes through temp files (no pipe stalls).
func runProcess(_ executable: String, _ arguments: [String], timeout: TimeInterval = 60) throws -> ProcessResult {
    let directory = FileManager.default.temporaryDirectory
    let outURL = directory.appendingPathComponent("h2test-\(UUID().uuidString).out")
    let errURL = directory.appendingPathComponent("h2test-\(UUID().uuidString).err")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    defer {
        try? FileManager.default.removeItem(at: outURL)
        try? FileManager.default.removeItem(at: errURL)
    }
    let outHandle = try FileHandle(forWritingTo: outURL)
    let errHandle = try FileHandle(forWritingTo: errURL)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardOutput = outHandle
    process.standardError = errHandle
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(20_000) }
    if process.isRunning {
        process.terminate()
        process.waitUntilExit()
        XCTFail("\(executable) timed out after \(timeout)s")
    }
    process.waitUntilExit()
    try outHandle.close()
    try errHandle.close()
    return ProcessResult(status: process.terminationStatus,
                         stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
}

func sha256(ofFile path: String) throws -> String {
    let result = try runProcess("/usr/bin/sha256sum", [path])
    return String(result.stdout.prefix(64))
}
