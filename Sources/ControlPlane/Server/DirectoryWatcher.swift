import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Notices changes under a config directory by polling a fingerprint of its YAML files
/// (path, size, modification time). Polling catches every editor's way of saving and works
/// on any filesystem; a change fires once the directory has been quiet for `debounce`: the
/// fingerprint is taken again `debounce` after the last change seen, and fires if it is the same.
public final class DirectoryWatcher: @unchecked Sendable {
    private let directory: String
    private let interval: TimeInterval
    private let debounce: TimeInterval
    private let onChange: @Sendable () -> Void
    private let queue = DispatchQueue(label: "meshd.config-watch")
    // Touched on `queue` only.
    private var last: String
    private var settling = false
    private var timer: DispatchSourceTimer?

    public init(directory: String, interval: TimeInterval = 0.1, debounce: TimeInterval = 0.1,
                onChange: @escaping @Sendable () -> Void) {
        self.directory = directory
        self.interval = interval
        self.debounce = debounce
        self.onChange = onChange
        self.last = Self.fingerprint(directory)
    }

    public func start() {
        let t = DispatchSource.makeTimerSource(queue: queue)
        t.schedule(deadline: .now() + interval, repeating: interval)
        t.setEventHandler { [weak self] in self?.tick() }
        t.resume()
        timer = t
    }

    public func stop() { timer?.cancel() }

    /// Fires now (SIGHUP), on the watcher's queue so it never overlaps a change it noticed.
    public func fireNow() {
        queue.async { [weak self] in self?.onChange() }
    }

    private func tick() {
        guard !settling else { return }
        let now = Self.fingerprint(directory)
        guard now != last else { return }
        last = now
        settling = true
        queue.asyncAfter(deadline: .now() + debounce) { [weak self] in self?.settle() }
    }

    /// `debounce` after a change: fire if nothing changed since, else wait again.
    private func settle() {
        let now = Self.fingerprint(directory)
        if now != last {
            last = now
            queue.asyncAfter(deadline: .now() + debounce) { [weak self] in self?.settle() }
            return
        }
        settling = false
        onChange()
    }

    /// `path:size:mtime` of every YAML and Lua file under `directory` (nested folders, hidden
    /// ones too; symlinked folders are not entered, symlinked files are followed), sorted.
    /// Plain `readdir`/`stat`: this runs ten times a second, and Foundation's enumerator and
    /// attribute dictionaries cost several times more for a directory of hundreds of files.
    static func fingerprint(_ directory: String) -> String {
        var parts: [String] = []
        func walk(_ dir: String, _ prefix: String) {
            guard let handle = opendir(dir) else { return }
            defer { closedir(handle) }
            while let entry = readdir(handle) {
                let name = withUnsafePointer(to: entry.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
                }
                if name == "." || name == ".." { continue }
                let full = dir + "/" + name
                let path = prefix.isEmpty ? name : prefix + "/" + name
                var link = stat()
                guard lstat(full, &link) == 0 else { continue }
                if (link.st_mode & S_IFMT) == S_IFDIR {
                    walk(full, path)
                } else if name.hasSuffix(".yaml") || name.hasSuffix(".yml") || name.hasSuffix(".lua") {
                    var st = stat()
                    guard stat(full, &st) == 0 else {
                        parts.append("\(path):-1:0")
                        continue
                    }
                    #if os(Linux)
                    let mtime = "\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
                    #else
                    let mtime = "\(st.st_mtimespec.tv_sec).\(st.st_mtimespec.tv_nsec)"
                    #endif
                    parts.append("\(path):\(st.st_size):\(mtime)")
                }
            }
        }
        walk(directory, "")
        return parts.sorted().joined(separator: "|")
    }
}
