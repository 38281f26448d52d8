#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// stderr without Foundation's FileHandle: the whole text, retried on short writes.
enum StandardError {
    static func write(_ text: String) {
        var text = text
        text.withUTF8 { writeAll(2, $0) }
    }
}

private func writeAll(_ fd: Int32, _ bytes: UnsafeBufferPointer<UInt8>) {
    var at = 0
    while at < bytes.count {
        let n = write(fd, bytes.baseAddress! + at, bytes.count - at)
        if n > 0 { at += n } else if n < 0 && errno == EINTR { continue } else { return }
    }
}

/// Ends the process (the C library's `exit`; inside a command type `exit` names ArgumentParser's).
func exitProcess(_ code: Int32) -> Never {
    exit(code)
}

/// Starts `path` with `arguments` and does not wait for it (a browser opener).
func spawnDetached(_ path: String, _ arguments: [String]) throws(CLIFailure) {
    var pid = pid_t()
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    let status = posix_spawn(&pid, path, nil, nil, argv, environ)
    guard status == 0 else { throw CLIFailure("cannot start \(path): \(String(cString: strerror(status)))") }
}
