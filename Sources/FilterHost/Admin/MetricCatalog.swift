import Transport

/// Every metric family meshd's proxy exports: its HELP text, and for a counter kept in
/// smaller units than it is shown in, how many kept units make one shown (base) unit. The type comes from
/// where a series is kept (counter, gauge or histogram). Istio's standard metrics keep
/// Istio's names, `istio_request_duration_milliseconds` included (dashboards query it).
public enum MetricCatalog {
    public struct Family: Sendable {
        public let help: String
        /// The kept integer divided by this is the exported value (microseconds → seconds: 1e6).
        public let unitsPerBaseUnit: Double?
    }

    public static func family(_ name: String) -> Family? { families[name] }

    /// HELP for a family no entry describes (a new counter someone forgot to list).
    public static func fallbackHelp(_ name: String) -> String { "meshd metric \(name)." }

    static let families: [String: Family] = {
        var f: [String: Family] = [:]
        func add(_ name: String, _ help: String, unitsPerBaseUnit: Double? = nil) {
            f[name] = Family(help: help, unitsPerBaseUnit: unitsPerBaseUnit)
        }
        // Downstream (listeners).
        add("meshd_downstream_rq_total", "Requests received, per listener.")
        add("meshd_downstream_rq_active", "Requests in flight, per listener.")
        add("meshd_downstream_rq_xx_total", "Requests answered, per listener and response code class.")
        add("meshd_downstream_rq_time_seconds", "Request time from first request byte to last response byte, per listener.")
        add("meshd_downstream_cx_total", "Downstream connections accepted, per listener.")
        add("meshd_downstream_cx_active", "Downstream connections open, per listener.")
        add("meshd_downstream_cx_overflow_total", "Downstream connections refused at accept by a connection limit, per listener.")
        add("meshd_downstream_cx_budget", "Downstream connections allowed open at once across all listeners.")
        add("meshd_downstream_rq_overload_close_total", "Requests refused by the overload manager (stop_accepting_requests), per listener.")
        add("meshd_downstream_cx_overload_reject_total", "Connections refused by the overload manager, per listener.")
        add("meshd_http2_inbound_empty_frames_flood_total", "HTTP/2 connections closed for too many consecutive empty frames.")
        add("meshd_http2_inbound_priority_frames_flood_total", "HTTP/2 connections closed for too many PRIORITY frames.")
        add("meshd_http2_inbound_window_update_frames_flood_total", "HTTP/2 connections closed for too many WINDOW_UPDATE frames.")
        // Upstream (clusters).
        add("meshd_upstream_rq_total", "Upstream responses received, per cluster.")
        add("meshd_upstream_rq_completed_total", "Upstream responses received, per cluster and response code.")
        add("meshd_upstream_cx_active", "Upstream connections open.")
        add("meshd_upstream_cx_overflow_total", "Times a cluster's maxConnections circuit breaker kept a new connection from opening, per cluster.")
        add("meshd_upstream_rq_pending_overflow_total", "Requests answered 503 UO by a cluster's pending or request circuit breaker, per cluster.")
        add("meshd_outlier_detection_ejections_total", "Endpoints ejected by outlier detection, per cluster.")
        for detector in ["consecutive_5xx", "consecutive_gateway_failure", "consecutive_local_origin_failure"] {
            add("meshd_outlier_detection_ejections_enforced_\(detector)_total", "Ejections enforced by the \(detector) detector, per cluster.")
        }
        add("meshd_outlier_detection_ejections_overflow_total", "Ejections not made because maxEjectionPercent was reached, per cluster.")
        add("meshd_outlier_detection_ejections_active", "Endpoints ejected now, per cluster.")
        // TCP proxy listeners.
        add("meshd_tcp_downstream_cx_total", "TCP proxy connections accepted, per listener.")
        add("meshd_tcp_downstream_cx_rx_bytes_total", "Bytes received from TCP proxy clients, per listener.")
        add("meshd_tcp_downstream_cx_tx_bytes_total", "Bytes sent to TCP proxy clients, per listener.")
        add("meshd_tcp_idle_timeout_total", "TCP proxy connections closed by the idle timeout, per listener.")
        add("meshd_tcp_no_route_total", "TCP proxy connections closed for want of a matching route (NR), per listener.")
        add("meshd_tcp_upstream_cx_total", "TCP proxy upstream connections attempted, per cluster.")
        add("meshd_tcp_upstream_cx_none_healthy_total", "TCP proxy connections closed because the cluster had no endpoint (UH), per cluster.")
        add("meshd_tcp_upstream_cx_connect_fail_total", "TCP proxy upstream connection failures (UF), per cluster.")
        // Security filters and tracing.
        add("meshd_rbac_allowed_total", "Requests the AuthorizationPolicy filter allowed.")
        add("meshd_rbac_denied_total", "Requests the AuthorizationPolicy filter denied (403).")
        add("meshd_rbac_dry_run_total", "What dry-run AuthorizationPolicies would have done, by action (ALLOW, DENY) and result (allowed, denied).")
        add("meshd_ext_authz_total", "External authorization checks of CUSTOM policies by result (ok, denied, error, failure_mode_allowed).")
        add("meshd_jwt_authn_allowed_total", "Requests the RequestAuthentication filter let through (a valid token or none).")
        add("meshd_jwt_authn_denied_total", "Requests refused for an invalid JWT.")
        add("meshd_tracing_spans_exported_total", "Spans exported to the OTLP collector.")
        add("meshd_tracing_spans_dropped_total", "Spans dropped (queue full or collector unreachable).")
        add("meshd_upstream_rq_retry_total", "Retries sent, per cluster.")
        add("meshd_upstream_rq_retry_success_total", "Requests that succeeded after a retry, per cluster.")
        add("meshd_upstream_rq_retry_limit_exceeded_total", "Requests that needed a retry past their retry limit, per cluster.")
        add("meshd_upstream_rq_retry_overflow_total", "Retries not sent because the cluster's retry budget was spent.")
        add("meshd_upstream_rq_retry_or_shadow_abandoned_total", "Requests whose retries and mirrors were given up (body too large to keep).")
        add("meshd_upstream_rq_mirrored_total", "Requests mirrored, per mirror cluster.")
        add("meshd_upstream_rq_mirror_failed_total", "Mirrored requests that failed or were given up, per mirror cluster.")
        // Native filters.
        add("meshd_fault_delays_injected_total", "Requests delayed by fault injection.")
        add("meshd_fault_aborts_injected_total", "Requests aborted by fault injection.")
        add("meshd_cors_origin_valid_total", "CORS requests whose origin is allowed.")
        add("meshd_cors_origin_invalid_total", "CORS requests whose origin is not allowed.")
        // Config.
        add("meshd_config_version", "Version of the config the proxy serves.")
        add("meshd_config_updates_accepted_total", "Config updates applied.")
        add("meshd_config_updates_rejected_total", "Config updates refused (the last good config kept serving).")
        // Overload manager.
        add("meshd_overload_action_active", "Whether an overload action is active (1) or not (0).")
        add("meshd_overload_resource_pressure", "A monitored resource's pressure, in percent of its limit.")
        add("meshd_overload_failed_updates_total", "Failed reads of a monitored resource.")
        // Lua.
        add("meshd_lua_executions_total", "Lua plugin runs (one per stream phase that calls the plugin).")
        add("meshd_lua_errors_total", "Lua plugin runs that failed (error, instruction or memory limit).")
        add("meshd_lua_time_seconds_total", "Time spent running a Lua plugin's code.", unitsPerBaseUnit: 1e6)
        add("meshd_lua_vms", "Lua VMs alive across all loops and plugin versions.")
        add("meshd_stats_series_overflow_total", "Series not recorded because a loop holds its cap of series.")
        // Istio's standard metrics (https://istio.io/latest/docs/reference/config/metrics/).
        add("istio_requests_total", "Requests handled by the proxy (Istio standard metric).")
        add("istio_request_duration_milliseconds", "Duration of requests (Istio standard metric).")
        add("istio_request_bytes", "Request body sizes (Istio standard metric).")
        add("istio_response_bytes", "Response body sizes (Istio standard metric).")
        add("istio_request_messages_total", "gRPC messages sent by the client (Istio standard metric).")
        add("istio_response_messages_total", "gRPC messages sent by the server (Istio standard metric).")
        add("istio_tcp_sent_bytes_total", "Bytes sent to the client of a TCP connection (Istio standard metric).")
        add("istio_tcp_received_bytes_total", "Bytes received from the client of a TCP connection (Istio standard metric).")
        add("istio_tcp_connections_opened_total", "TCP connections opened (Istio standard metric).")
        add("istio_tcp_connections_closed_total", "TCP connections closed (Istio standard metric).")
        return f
    }()
}

/// Rendering of the proxy's series (the format's basics are in Transport).
extension PrometheusText {
    static func familyName(_ key: String) -> String { String(key.prefix { $0 != "{" }) }

    /// `name{a="b"}` split into name and the label text inside the braces ("" when none).
    static func split(_ key: String) -> (name: String, labels: Substring) {
        guard let open = key.firstIndex(of: "{"), key.hasSuffix("}") else { return (key, "") }
        return (String(key[..<open]), key[key.index(after: open)..<key.index(before: key.endIndex)])
    }

    static func header(_ out: inout String, _ name: String, type: String) {
        let help = MetricCatalog.family(name)?.help ?? MetricCatalog.fallbackHelp(name)
        out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    /// Renders counters, gauges and histograms; each family's series together.
    public static func render(counters: [String: Int], gauges: [String: Int],
                              histograms: [String: HistogramCounts]) -> String {
        var out = ""
        func scalars(_ entries: [String: Int], type: String) {
            var byFamily: [String: [String]] = [:]
            for key in entries.keys { byFamily[familyName(key), default: []].append(key) }
            for name in byFamily.keys.sorted() {
                header(&out, name, type: type)
                let units = MetricCatalog.family(name)?.unitsPerBaseUnit
                for key in byFamily[name]!.sorted() {
                    let v = entries[key]!
                    out += "\(key) \(units.map { number(Double(v) / $0) } ?? String(v))\n"
                }
            }
        }
        scalars(counters, type: "counter")
        scalars(gauges, type: "gauge")
        var byFamily: [String: [String]] = [:]
        for key in histograms.keys { byFamily[familyName(key), default: []].append(key) }
        for name in byFamily.keys.sorted() {
            header(&out, name, type: "histogram")
            for key in byFamily[name]!.sorted() {
                let h = histograms[key]!
                let labels = split(key).labels
                let sep = labels.isEmpty ? "" : ","
                for (le, n) in h.cumulative { out += "\(name)_bucket{\(labels)\(sep)le=\"\(le)\"} \(n)\n" }
                let braces = labels.isEmpty ? "" : "{\(labels)}"
                out += "\(name)_sum\(braces) \(number(h.sum))\n\(name)_count\(braces) \(h.count)\n"
            }
        }
        return out
    }
}
