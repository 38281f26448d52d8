import MeshAPI
import NIOCore
import Transport

/// A listener's downstream pipeline (protocol selection, the HTTP/1 or HTTP/2 codec, engine
/// streams with the snapshot's routes and filters) on a channel the caller drives instead of
/// an accepted socket: the fuzz targets feed it bytes through an `EmbeddedChannel`.
/// Each instance is one loop's worth of engine state; make one per channel's event loop.
package final class DetachedDownstream {
    private let setup: ConnectionSetup

    /// Must be called on `eventLoop`. Throws when `snapshot` has no listener named `listener`.
    package init(snapshot: ProxySnapshot, listener name: String, eventLoop: EventLoop) throws {
        guard let listener = snapshot.listener(named: name) else {
            throw ConfigError(path: "listeners", reason: "no listener named '\(name)'")
        }
        let loop = LoopContext(eventLoop: eventLoop, snapshot: snapshot, accessLog: AccessLogWriter(eventLoop: eventLoop))
        setup = ConnectionSetup(listener: listener, contexts: LoopContexts([loop]), boundTLSContext: nil,
                                tracker: ConnectionTracker())
    }

    /// Installs the pipeline of a newly accepted cleartext connection on `channel`.
    package func accept(_ channel: Channel) throws {
        try setup.initialize(channel)
    }
}
