import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Scrapes every connected proxy's `/stats/prometheus` (its admin address, as it reported it
/// when it connected) every `interval`, on a loop of its own: a slow or silent proxy costs a
/// connection until `timeout`, never a thread, and the discovery server's loops never see
/// this work. Rates come from the difference between a proxy's newest scrape and its oldest
/// within `window`.
public final class MeshGraphCollector: Sendable {
    public typealias Proxies = @Sendable () -> [ProxyHub.ProxyStatus]

    private struct Scrape {
        var at: DispatchTime
        var tally: TrafficTally
    }

    private struct State {
        var history: [String: [Scrape]] = [:]
        /// Per proxy: `ok`, or why its last scrape failed.
        var outcome: [String: String] = [:]
        var roundInFlight = false
        var task: RepeatedTask?
    }

    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let proxies: Proxies
    private let interval: TimeAmount
    private let timeout: TimeAmount
    private let window: Double
    private let state = NIOLockedValueBox(State())

    public init(proxies: @escaping Proxies, interval: Double = 2, timeout: Double = 1.5) {
        self.proxies = proxies
        self.interval = .milliseconds(Int64(interval * 1000))
        self.timeout = .milliseconds(Int64(min(timeout, interval) * 1000))
        // Five scrapes: rates steady enough to read, recent enough to follow a change.
        self.window = interval * 5
    }

    public func start() {
        let loop = group.next()
        let task = loop.scheduleRepeatedTask(initialDelay: .zero, delay: interval) { [self] _ in scrapeAll(on: loop) }
        state.withLockedValue { $0.task = task }
    }

    public func stop() {
        state.withLockedValue { $0.task?.cancel() }
        try? group.syncShutdownGracefully()
    }

    /// The graph from the traffic seen so far and the proxies as they are now.
    public func graph(now: Date = Date()) -> MeshGraph {
        let statuses = proxies()
        let (traffic, outcome) = state.withLockedValue { s -> ([(TrafficTally, Double)], [String: String]) in
            let traffic = statuses.compactMap { p -> (TrafficTally, Double)? in
                guard let h = s.history[p.id], let first = h.first, let last = h.last, h.count > 1 else { return nil }
                return (last.tally.since(first.tally), Double(last.at.uptimeNanoseconds - first.at.uptimeNanoseconds) / 1e9)
            }
            return (traffic, s.outcome)
        }
        let rows = statuses.map { p in
            MeshGraph.Proxy(id: p.id, kind: p.kind, name: p.name, namespace: p.namespace, adminAddress: p.adminAddress,
                            syncStatus: p.status.rawValue, nackReason: p.nackReason, plugins: p.plugins,
                            scrape: p.adminAddress.isEmpty ? "no admin address" : outcome[p.id] ?? "pending")
        }
        return MeshGraph.build(traffic: traffic.map { (tally: $0.0, seconds: $0.1) }, proxies: rows,
                               scrapeInterval: Double(interval.nanoseconds) / 1e9, now: now)
    }

    private func scrapeAll(on loop: EventLoop) {
        let busy = state.withLockedValue { s -> Bool in
            defer { s.roundInFlight = true }
            return s.roundInFlight
        }
        guard !busy else { return }
        let targets = proxies().filter { !$0.adminAddress.isEmpty }
        let fetches = targets.map { p in
            AdminFetch.get(p.adminAddress, path: "/stats/prometheus", on: loop, timeout: timeout)
                .map { (p.id, Result<TrafficTally, Error>.success(TrafficTally(exposition: String(buffer: $0)))) }
                .recover { (p.id, .failure($0)) }
        }
        EventLoopFuture.whenAllSucceed(fetches, on: loop).whenComplete { [self] result in
            let now = DispatchTime.now()
            let horizon = now.uptimeNanoseconds - min(now.uptimeNanoseconds, UInt64(window * 1e9))
            let live = Set(targets.map(\.id))
            state.withLockedValue { s in
                s.roundInFlight = false
                for (id, outcome) in (try? result.get()) ?? [] {
                    switch outcome {
                    case .success(let tally):
                        var h = s.history[id, default: []]
                        h.append(Scrape(at: now, tally: tally))
                        h.removeAll { $0.at.uptimeNanoseconds < horizon }
                        s.history[id] = h
                        s.outcome[id] = "ok"
                    case .failure(let error):
                        s.outcome[id] = "\(error)"
                    }
                }
                // Proxies gone: their history goes with them.
                s.history = s.history.filter { live.contains($0.key) }
                s.outcome = s.outcome.filter { live.contains($0.key) }
            }
        }
    }
}
