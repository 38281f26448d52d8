/// A histogram's bucket upper bounds (Prometheus `le`), ascending; `+Inf` is implied.
public struct HistogramBounds: Sendable, Equatable {
    public let upperBounds: [Double]

    public init(_ upperBounds: [Double]) { self.upperBounds = upperBounds }

    /// Envoy's default buckets (`HistogramSettingsImpl::defaultBuckets`), which Istio's
    /// standard histograms use unchanged: milliseconds for durations, bytes for sizes.
    public static let envoyDefault = HistogramBounds([
        0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
        1_800_000, 3_600_000,
    ])

    /// The same buckets for a duration kept in seconds (meshd's own, base-unit histograms).
    public static let envoyDefaultSeconds = HistogramBounds(envoyDefault.upperBounds.map { $0 / 1000 })
}

/// One histogram series: counts per bucket (not cumulative; the last is `+Inf`), sum and count.
public struct HistogramCounts: Sendable, Equatable {
    public let bounds: HistogramBounds
    public private(set) var buckets: [Int]
    public private(set) var sum: Double = 0
    public private(set) var count: Int = 0

    public init(bounds: HistogramBounds) {
        self.bounds = bounds
        buckets = [Int](repeating: 0, count: bounds.upperBounds.count + 1)
    }

    public mutating func observe(_ value: Double) {
        let bounds = self.bounds.upperBounds
        var i = 0
        while i < bounds.count, value > bounds[i] { i += 1 }
        buckets[i] += 1
        sum += value
        count += 1
    }

    /// Adds another loop's copy of the same series (same bounds).
    public mutating func merge(_ other: HistogramCounts) {
        guard other.bounds == bounds else { return }
        for i in buckets.indices { buckets[i] += other.buckets[i] }
        sum += other.sum
        count += other.count
    }

    /// (`le` text, cumulative count) per bucket, ending with `+Inf`.
    public var cumulative: [(le: String, count: Int)] {
        var out: [(String, Int)] = []
        var running = 0
        for (i, n) in buckets.enumerated() {
            running += n
            let le = i < bounds.upperBounds.count ? PrometheusText.number(bounds.upperBounds[i]) : "+Inf"
            out.append((le, running))
        }
        return out
    }
}
