#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import MeshAPI
import NIOCore
import NIOHTTP1
import Transport

/// Istio's access log, one line per stream, TEXT or JSON. Without pushed telemetry every line
/// goes to stdout in the start encoding (`accessLogEncoding`, the `--access-log-encoding`
/// flag); with it, the snapshot says whether, where ("/dev/stdout" or a file), in which format
/// and for which streams (its filter). The start encoding, when given, wins over the pushed one.
/// Each loop buffers its lines per destination and writes them in one syscall, at most 50 ms later.
final class AccessLogWriter {
    private let eventLoop: EventLoop
    /// The encoding the proxy was started with; nil: not given (TEXT unless pushed).
    private let startEncoding: AccessLogEncoding?
    private var buffers: [String: [UInt8]] = [:]
    /// Open files by path ("/dev/stdout" is fd 1, never opened); -1: could not be opened.
    private var files: [String: Int32] = [:]
    private var flushScheduled = false

    init(eventLoop: EventLoop, encoding: AccessLogEncoding? = nil) {
        self.eventLoop = eventLoop
        self.startEncoding = encoding
    }

    deinit {
        for fd in files.values where fd > 2 { close(fd) }
    }

    func record(_ info: StreamInfo, requestHeaders: HTTPHeaders?, telemetry: SnapshotTelemetry) {
        switch telemetry.accessLog {
        case .off: return
        case .startSettings: record(AccessLogEntry(info), telemetry: telemetry)
        case .on: record(AccessLogEntry(info, requestHeaders: requestHeaders), telemetry: telemetry)
        }
    }

    /// An entry made elsewhere (a TCP proxy connection's).
    func record(_ entry: AccessLogEntry, telemetry: SnapshotTelemetry) {
        switch telemetry.accessLog {
        case .off: return
        case .startSettings:
            append((startEncoding == .json ? entry.json : entry.text), to: AccessLogSettings.stdout)
        case .on(let log):
            guard let line = entry.line(for: log, encoding: startEncoding ?? log.encoding) else { return }
            append(line, to: log.path)
        }
    }

    private func append(_ line: String, to path: String) {
        buffers[path, default: []].append(contentsOf: line.utf8)
        if buffers[path]!.count > 32 * 1024 { flush() } else if !flushScheduled {
            flushScheduled = true
            let bound = NIOLoopBound(self, eventLoop: eventLoop)
            eventLoop.scheduleTask(in: .milliseconds(50)) { bound.value.flush() }
        }
    }

    func flush() {
        flushScheduled = false
        for path in Array(buffers.keys) where !buffers[path]!.isEmpty {
            let fd = descriptor(path)
            if fd >= 0 { buffers[path]!.withUnsafeBytes { Self.writeAll(fd, $0) } }
            buffers[path]!.removeAll(keepingCapacity: true)
        }
    }

    private func descriptor(_ path: String) -> Int32 {
        if path == AccessLogSettings.stdout { return 1 }
        if let fd = files[path] { return fd }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        files[path] = fd
        return fd
    }

    private static func writeAll(_ fd: Int32, _ raw: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < raw.count {
            let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n <= 0 { break }
            offset += n
        }
    }
}
