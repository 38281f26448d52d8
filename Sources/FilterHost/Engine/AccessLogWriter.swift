import Foundation
import NIOCore
import Transport

/// Envoy's default access-log format, one line per stream, written to stdout.
/// Each loop buffers its lines and writes them in one syscall, at most 50 ms later.
final class AccessLogWriter {
    private let eventLoop: EventLoop
    private var buffer: [UInt8] = []
    private var flushScheduled = false

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
        buffer.reserveCapacity(16 * 1024)
    }

    func record(_ info: StreamInfo) {
        record(line: Self.format(info))
    }

    /// A line already formatted (a TCP proxy connection's).
    func record(line: String) {
        buffer.append(contentsOf: line.utf8)
        if buffer.count > 32 * 1024 { flush() } else if !flushScheduled {
            flushScheduled = true
            let bound = NIOLoopBound(self, eventLoop: eventLoop)
            eventLoop.scheduleTask(in: .milliseconds(50)) { bound.value.flush() }
        }
    }

    func flush() {
        flushScheduled = false
        guard !buffer.isEmpty else { return }
        buffer.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(1, raw.baseAddress! + offset, raw.count - offset)
                if n <= 0 { break }
                offset += n
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }

    static func format(_ i: StreamInfo) -> String {
        let durationMs = (NIODeadline.now() - i.startTime).nanoseconds / 1_000_000
        let start = Self.timestamp(i.startWallTime)
        let code = i.responseCode ?? 0
        let upstreamTime = i.upstreamServiceTime.map(String.init) ?? "-"
        return "[\(start)] \"\(i.method) \(i.path) \(i.protocolVersion.rawValue)\" \(code) \(i.flagsString) "
            + "\(i.bytesReceived) \(i.bytesSent) \(durationMs) \(upstreamTime) \"\(i.forwardedFor ?? "-")\" "
            + "\"\(i.userAgent ?? "-")\" \"\(i.requestID ?? "-")\" \"\(i.authority)\" \"\(i.upstreamHost ?? "-")\"\n"
    }

    static func timestamp(_ t: Double) -> String {
        var seconds = time_t(t)
        var tm = tm()
        gmtime_r(&seconds, &tm)
        let ms = Int((t - Double(Int(t))) * 1000)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1,
                      Int(tm.tm_mday), Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec), ms)
    }
}
