@testable import FilterHost
import Transport
import XCTest

final class PrometheusTextTests: XCTestCase {
    func testHistogramIsCumulativeWithSumCountAndInf() {
        var h = HistogramCounts(bounds: HistogramBounds([1, 10]))
        for v in [0.5, 1, 7, 11, 300] { h.observe(v) }
        let text = PrometheusText.render(counters: [:], gauges: [:], histograms: [#"x_seconds{a="b"}"#: h])
        XCTAssertEqual(text, """
        # HELP x_seconds meshd metric x_seconds.
        # TYPE x_seconds histogram
        x_seconds_bucket{a="b",le="1"} 2
        x_seconds_bucket{a="b",le="10"} 3
        x_seconds_bucket{a="b",le="+Inf"} 5
        x_seconds_sum{a="b"} 319.5
        x_seconds_count{a="b"} 5

        """)
    }

    func testEveryFamilyHasHelpAndTypeOnceAndScaledCountersShowBaseUnits() {
        let text = PrometheusText.render(
            counters: [#"meshd_lua_time_seconds_total{plugin="p"}"#: 1_500_000, #"meshd_lua_time_seconds_total{plugin="q"}"#: 5],
            gauges: ["meshd_config_version": 3], histograms: [:])
        XCTAssertEqual(text.components(separatedBy: "# TYPE meshd_lua_time_seconds_total counter").count, 2)
        XCTAssertTrue(text.contains("# HELP meshd_lua_time_seconds_total Time spent"))
        XCTAssertTrue(text.contains(#"meshd_lua_time_seconds_total{plugin="p"} 1.5"#), text)
        XCTAssertTrue(text.contains(#"meshd_lua_time_seconds_total{plugin="q"} 5e-06"#), text)
        XCTAssertTrue(text.contains("# TYPE meshd_config_version gauge\nmeshd_config_version 3\n"))
    }

    func testEnvoyDefaultBuckets() {
        XCTAssertEqual(HistogramBounds.envoyDefault.upperBounds.first, 0.5)
        XCTAssertEqual(HistogramBounds.envoyDefault.upperBounds.last, 3_600_000)
        XCTAssertEqual(HistogramBounds.envoyDefault.upperBounds.count, 19)
        XCTAssertEqual(HistogramBounds.envoyDefaultSeconds.upperBounds.first, 0.0005)
    }

    func testLabelValuesEscaped() {
        XCTAssertEqual(PrometheusText.escape("a\"b\\c\nd"), #"a\"b\\c\nd"#)
    }
}
