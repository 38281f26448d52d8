#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Notices changes under a config directory by polling a fingerprint of its YAML and secret files
/// (path, size, modification and change times, inode). Polling catches every editor's way of
/// saving and works on any filesystem; the inode and change time catch a rename-over by a file
/// of the same size whose modification time was kept (`cp -p`, `rsync -t`, tar). A change fires
/// once the directory has been quiet for `debounce`: the fingerprint is taken again `debounce`
/// after the last change seen, and fires if it is the same.
///
/// A writer that is not atomic may pause mid-file for longer than that, so a config that does
/// not load is not refused at once: `onChange(mayRefuse: false)` answers false, and the
/// watcher asks again every `interval` while the directory stays quiet, with `mayRefuse: true`
/// once it has been quiet for `refusalDelay`. Any change in between starts over.
public final class DirectoryWatcher: @unchecked Sendable {
    /// Called with whether a config that fails may be refused now; returns whether the change
    /// was dealt with (loaded, or refused), false to be asked again later.
    public typealias OnChange = @Sendable (_ mayRefuse: Bool) -> Bool

    private let directory: String
    /// Files outside the directory that count as part of it (the mesh config file).
    private let files: [String]
    private let interval: TimeInterval
    private let debounce: TimeInterval
    private let refusalDelay: TimeInterval
    private let onChange: OnChange
    private let queue = DispatchQueue(label: "meshd.config-watch")
    // Touched on `queue` only.
    private var last: String
    /// When the fingerprint last changed.
    private var changedAt = DispatchTime.now()
    private var settling = false
    private var timer: DispatchSourceTimer?

    /// The fingerprint is taken here: make the watcher before loading the directory the first
    /// time, so a change made while that load runs is not missed.
    public init(directory: String, alsoWatching files: [String] = [], interval: TimeInterval = 0.1,
                debounce: TimeInterval = 0.1, refusalDelay: TimeInterval = 1.0, onChange: @escaping OnChange) {
        self.directory = directory
        self.files = files
        self.interval = interval
        self.debounce = debounce
        self.refusalDelay = refusalDelay
        self.onChange = onChange
        self.last = Self.fingerprint(directory, files)
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
        queue.async { [weak self] in _ = self?.onChange(true) }
    }

    private func tick() {
        guard !settling else { return }
        let now = Self.fingerprint(directory, files)
        guard now != last else { return }
        last = now
        changedAt = .now()
        settling = true
        queue.asyncAfter(deadline: .now() + debounce) { [weak self] in self?.settle() }
    }

    /// `debounce` after a change: fire if nothing changed since, else wait again. A config
    /// that does not load yet is tried again every `interval` until refused or replaced.
    private func settle() {
        let now = Self.fingerprint(directory, files)
        if now != last {
            last = now
            changedAt = .now()
            queue.asyncAfter(deadline: .now() + debounce) { [weak self] in self?.settle() }
            return
        }
        let quiet = Double(DispatchTime.now().uptimeNanoseconds - changedAt.uptimeNanoseconds) / 1e9
        if onChange(quiet >= refusalDelay) {
            settling = false
        } else {
            queue.asyncAfter(deadline: .now() + interval) { [weak self] in self?.settle() }
        }
    }

    /// `path:size:mtime:ctime:inode` of every YAML and Lua file and every secret file (`tls.crt`,
    /// `key`, … of a secret directory: a rotation reloads, and is pushed) under `directory`
    /// (nested folders, hidden ones too; symlinked folders are not entered, symlinked files are
    /// followed), and of `files` (outside it), sorted. Secret files are never read as config:
    /// the store reads YAML only.
    /// Plain `readdir`/`stat`: this runs ten times a second, and Foundation's enumerator and
    /// attribute dictionaries cost several times more for a directory of hundreds of files.
    static func fingerprint(_ directory: String, _ files: [String] = []) -> String {
        var parts: [String] = []
        for file in files { parts.append(file + ":" + stamp(file)) }
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
                } else if name.hasSuffix(".yaml") || name.hasSuffix(".yml") || name.hasSuffix(".lua")
                            || TLSCredential.fileNames.contains(name) {
                    parts.append(path + ":" + stamp(full))
                }
            }
        }
        walk(directory, "")
        return parts.sorted().joined(separator: "|")
    }

    /// `size:mtime:ctime:inode` of a file (symlinks followed), `-1:0` when it cannot be read.
    private static func stamp(_ path: String) -> String {
        var st = stat()
        guard stat(path, &st) == 0 else { return "-1:0" }
        #if os(Linux)
        let times = "\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec):\(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)"
        #else
        let times = "\(st.st_mtimespec.tv_sec).\(st.st_mtimespec.tv_nsec):\(st.st_ctimespec.tv_sec).\(st.st_ctimespec.tv_nsec)"
        #endif
        return "\(st.st_size):\(times):\(st.st_ino)"
    }
}
