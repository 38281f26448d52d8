import Foundation

/// Notices changes under a config directory by polling a fingerprint of its YAML files
/// (path, size, modification time). Polling catches every editor's way of saving and works
/// on any filesystem; a change fires once the directory has been quiet for `debounce`.
public final class DirectoryWatcher: @unchecked Sendable {
    private let directory: String
    private let interval: TimeInterval
    private let debounce: TimeInterval
    private let onChange: @Sendable () -> Void
    private let queue = DispatchQueue(label: "meshd.config-watch")
    private var last: String
    private var pendingSince: Date?
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

    private func tick() {
        let now = Self.fingerprint(directory)
        if now != last {
            last = now
            pendingSince = Date()
            return
        }
        if let since = pendingSince, Date().timeIntervalSince(since) >= debounce {
            pendingSince = nil
            onChange()
        }
    }

    static func fingerprint(_ directory: String) -> String {
        let fm = FileManager.default
        guard let walker = fm.enumerator(atPath: directory) else { return "" }
        var parts: [String] = []
        for case let path as String in walker where path.hasSuffix(".yaml") || path.hasSuffix(".yml") || path.hasSuffix(".lua") {
            let full = directory + "/" + path
            let attrs = try? fm.attributesOfItem(atPath: full)
            let size = (attrs?[.size] as? NSNumber)?.intValue ?? -1
            let mtime = (attrs?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            parts.append("\(path):\(size):\(mtime)")
        }
        return parts.sorted().joined(separator: "|")
    }
}
