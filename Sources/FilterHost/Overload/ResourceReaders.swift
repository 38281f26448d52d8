#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Cheap reads of what the resource monitors measure.
enum ResourceReaders {
    /// The process's resident set size in bytes: the second field of `/proc/self/statm`
    /// (pages) times the page size. Nil where there is no procfs (macOS) or it cannot be read.
    static func residentBytes() -> Int? {
        let fd = open("/proc/self/statm", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 128)
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return parseStatm(bytes[0..<n], pageSize: Int(sysconf(Int32(_SC_PAGESIZE))))
    }

    /// `size resident shared text lib data dt`, in pages.
    static func parseStatm(_ text: some Sequence<UInt8>, pageSize: Int) -> Int? {
        let fields = String(decoding: Array(text), as: UTF8.self).split(separator: " ")
        guard fields.count >= 2, let pages = Int(fields[1].trimmed) else {
            return nil
        }
        return pages * pageSize
    }
}
