"""Istio's standard metrics end to end: a real Prometheus (Debian `prometheus`) scrapes every
sidecar's Prometheus port and the control plane while the test sends a known number of
requests from productpage's sidecar to reviews; the PromQL of Istio's standard dashboards
returns that traffic, and `promtool check metrics` accepts every exporter's output."""
import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request

import pytest

from conftest import free_port, wait_for_port
from mesh_harness import Client, ControlPlane, http_get, service_entry, wait_until

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")

# Istio's own names: Istio's dashboards query them, so they keep their unit and, as Istio
# exports its control-plane counters, no `_total` (promtool's only findings).
ISTIO_UNIT_FINDING = 'istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"'
PILOT_PUSHES_FINDING = 'pilot_xds_pushes counter metrics should have "_total" suffix'

OK_REQUESTS = 23
FAILED_REQUESTS = 4
WARMUP_OK, WARMUP_FAILED = 3, 1


def promtool_findings(text):
    """promtool's lint findings for an exposition, minus the one Istio's naming forces."""
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    findings = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    return [f for f in findings if f not in (ISTIO_UNIT_FINDING, PILOT_PUSHES_FINDING)]


class Prometheus:
    """A Prometheus on loopback scraping `targets` every second, storage in the test's directory."""

    def __init__(self, mesh, targets):
        self.port = free_port()
        workdir = os.path.join(mesh.workdir, "prometheus")
        os.makedirs(workdir)
        jobs = []
        for name, (port, path) in targets.items():
            jobs.append(f"""
  - job_name: {name}
    metrics_path: {path}
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]""")
        config = os.path.join(workdir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:" + "".join(jobs) + "\n")
        self.process = mesh.start([PROMETHEUS, f"--config.file={config}",
                                   f"--storage.tsdb.path={os.path.join(workdir, 'data')}",
                                   f"--web.listen-address=127.0.0.1:{self.port}"], "prometheus")
        wait_for_port(self.port, timeout=30)
        # The port opens before the storage is ready; the API answers 503 until then.
        wait_until(lambda: http_get(f"http://127.0.0.1:{self.port}/-/ready")[0] == 200, timeout=60,
                   interval=0.2, what="Prometheus ready")

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql):
        """The instant vector as {frozenset(labels): value}."""
        data = self.api("query", query=promql)
        return {frozenset(s["metric"].items()): float(s["value"][1]) for s in data["result"]}

    def scalar(self, promql):
        values = list(self.query(promql).values())
        return values[0] if len(values) == 1 else None

    def wait_targets_up(self, count, timeout=60):
        def up():
            active = self.api("targets")["activeTargets"]
            return len(active) == count and all(t["health"] == "up" for t in active)
        wait_until(up, timeout, interval=0.5, what="every Prometheus target up")


@pytest.mark.skipif(PROMETHEUS is None or PROMTOOL is None, reason="needs Debian's prometheus package (prometheus, promtool)")
def test_istio_dashboard_queries_see_the_traffic_sent(mesh):
    cp = ControlPlane(mesh, {"services.yaml": service_entry("reviews") + "---" + service_entry("productpage")}).start()
    prom_ports = {"productpage": free_port(), "reviews": free_port()}
    productpage = cp.sidecar("productpage", "v1", with_app=False,
                             extra_args=("--prometheus-port", str(prom_ports["productpage"])))
    reviews = cp.sidecar("reviews", "v1", extra_args=("--prometheus-port", str(prom_ports["reviews"])))
    cp.wait_ready(timeout=60)

    # The Prometheus port serves the metrics alone.
    assert http_get(f"http://127.0.0.1:{prom_ports['reviews']}/stats/prometheus")[0] == 200
    assert http_get(f"http://127.0.0.1:{prom_ports['reviews']}/config_dump")[0] == 404

    prometheus = Prometheus(mesh, {
        "productpage": (prom_ports["productpage"], "/stats/prometheus"),
        "reviews": (prom_ports["reviews"], "/stats/prometheus"),
        "control-plane": (cp.status_port, "/metrics"),
    })
    prometheus.wait_targets_up(3)

    def send(ok, failed):
        client = Client(productpage.outbound, timeout=10)
        try:
            for _ in range(ok):
                status, _, body = client.get("reviews")
                assert status == 200
                echoed = json.loads(body)["headers"]
                # The exchange headers end at the server's sidecar.
                assert "x-envoy-peer-metadata" not in echoed and "x-envoy-peer-metadata-id" not in echoed
            for _ in range(failed):
                # 500, not 503: Istio's default retry policy retries a 503, and the server's
                # sidecar counts every attempt.
                status, headers, _ = client.get("reviews", path="/status/500")
                assert status == 500
                assert "x-envoy-peer-metadata" not in headers, "the client app never sees them either"
        finally:
            client.close()

    def seen(n):
        """Both reporters' counts in Prometheus are `n` (exact)."""
        counts = lambda: [prometheus.scalar(f'sum(istio_requests_total{{reporter="{r}"}})') for r in ("source", "destination")]
        try:
            wait_until(lambda: counts() == [n, n], timeout=60, interval=0.5, what=f"{n} requests in Prometheus")
        except TimeoutError:
            raise AssertionError(f"want {n} requests from each reporter, Prometheus has (source, destination) {counts()}")

    # rate() counts increases between samples: a first batch makes the series exist, the
    # second is what the dashboards' rates see.
    send(WARMUP_OK, WARMUP_FAILED)
    seen(WARMUP_OK + WARMUP_FAILED)
    send(OK_REQUESTS - WARMUP_OK, FAILED_REQUESTS - WARMUP_FAILED)
    total = OK_REQUESTS + FAILED_REQUESTS
    seen(total)
    edge = ('source_workload="productpage-v1",source_app="productpage",destination_workload="reviews-v1",'
            'destination_app="reviews",destination_version="v1",'
            'destination_service="reviews.default.svc.cluster.local",destination_service_name="reviews",'
            'destination_service_namespace="default",request_protocol="http"')
    for reporter in ("source", "destination"):
        assert prometheus.scalar(f'sum(istio_requests_total{{reporter="{reporter}",{edge},response_code="200"}})') \
            == OK_REQUESTS, reporter
        assert prometheus.scalar(f'sum(istio_requests_total{{reporter="{reporter}",{edge},response_code="500"}})') \
            == FAILED_REQUESTS, reporter
    assert prometheus.scalar('sum(istio_requests_total{reporter="destination",connection_security_policy="none"})') == total
    assert prometheus.scalar('sum(istio_request_duration_milliseconds_count{reporter="destination"})') == total
    assert prometheus.scalar('sum(istio_response_bytes_count{reporter="source"})') == total

    # Istio's dashboards: request volume per workload, success rate, latency quantiles.
    volume = prometheus.query('sum(rate(istio_requests_total{reporter="destination"}[1m])) by (destination_workload)')
    assert list(volume) == [frozenset({("destination_workload", "reviews-v1")})]
    assert list(volume.values())[0] > 0
    success = prometheus.scalar(
        'sum(rate(istio_requests_total{reporter="destination",response_code!~"5.*"}[1m]))'
        ' / sum(rate(istio_requests_total{reporter="destination"}[1m]))')
    ok, failed = OK_REQUESTS - WARMUP_OK, FAILED_REQUESTS - WARMUP_FAILED
    assert success == pytest.approx(ok / (ok + failed), abs=0.05)
    for q in (0.5, 0.9, 0.99):
        latency = prometheus.scalar(
            f'histogram_quantile({q}, sum(rate(istio_request_duration_milliseconds_bucket{{reporter="destination"}}[1m])) by (le))')
        assert latency is not None and 0 < latency < 10_000, (q, latency)
    # meshd's own latency histogram, in seconds.
    p99 = prometheus.scalar('histogram_quantile(0.99, sum(rate(meshd_downstream_rq_time_seconds_bucket[1m])) by (le))')
    assert p99 is not None and 0 < p99 < 10, p99
    assert prometheus.scalar('meshd_cp_proxies{status="SYNCED"}') == 2

    # Every exporter passes promtool's checks (HELP, TYPE, _total, base units).
    for name, port in prom_ports.items():
        status, text = http_get(f"http://127.0.0.1:{port}/stats/prometheus")
        assert status == 200 and "# HELP istio_requests_total" in text
        assert promtool_findings(text) == [], name
    for proxy in (productpage, reviews):
        assert promtool_findings(http_get(f"http://127.0.0.1:{proxy.admin}/stats/prometheus")[1]) == []
    assert promtool_findings(http_get(f"http://127.0.0.1:{cp.status_port}/metrics")[1]) == []


def test_a_taken_prometheus_port_refuses_start(mesh):
    cp = ControlPlane(mesh, {"services.yaml": service_entry("reviews")}).start()
    taken = free_port()
    import socket
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", taken))
    blocker.listen()
    try:
        w = cp.sidecar("reviews", "v1", extra_args=("--prometheus-port", str(taken)))
        wait_until(lambda: not w.running(), timeout=30, what="sidecar refusing a taken --prometheus-port")
        assert "cannot listen on the Prometheus port" in w.process.stderr()
    finally:
        blocker.close()


def control_plane_metrics(cp):
    """{sample name with labels: value} of the control plane's /metrics."""
    status, text = http_get(f"http://127.0.0.1:{cp.status_port}/metrics")
    assert status == 200
    return text, {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line and not line.startswith("#")}


VIRTUAL_SERVICE = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - timeout: %s
    route: [{destination: {host: reviews.default.svc.cluster.local}}]
"""


@pytest.mark.skipif(PROMTOOL is None, reason="needs Debian's prometheus package (promtool)")
def test_control_plane_push_and_convergence_metrics(mesh):
    """Istio's pilot_xds_pushes{type} and pilot_proxy_convergence_time (seconds, Istio's buckets)."""
    cp = ControlPlane(mesh, {"services.yaml": service_entry("reviews") + "---" + service_entry("productpage"),
                             "vs.yaml": VIRTUAL_SERVICE % "5s"}).start()
    cp.sidecar("productpage", "v1", with_app=False)
    cp.sidecar("reviews", "v1")
    cp.wait_ready(timeout=60)
    text, before = control_plane_metrics(cp)
    assert promtool_findings(text) == []
    assert "# TYPE pilot_xds_pushes counter" in text and "# TYPE pilot_proxy_convergence_time histogram" in text
    buckets = [l.split('le="')[1].split('"')[0] for l in text.splitlines() if l.startswith("pilot_proxy_convergence_time_bucket")]
    assert buckets == ["0.1", "0.5", "1", "3", "5", "10", "20", "30", "+Inf"]
    # Each proxy's first config carried every type and was acknowledged: one convergence each at least.
    for t in ("lds", "rds", "cds"):
        assert before[f'pilot_xds_pushes{{type="{t}"}}'] >= 2, (t, text)
    assert before["pilot_proxy_convergence_time_count"] >= 2
    assert before['pilot_proxy_convergence_time_bucket{le="+Inf"}'] == before["pilot_proxy_convergence_time_count"]

    # A route change: both proxies get new routes (rds), nothing else changes type, and each
    # acknowledgment is one more convergence, well within the 30 s bucket.
    cp.apply({"vs.yaml": VIRTUAL_SERVICE % "7s"})
    _, after = control_plane_metrics(cp)
    assert after['pilot_xds_pushes{type="rds"}'] - before['pilot_xds_pushes{type="rds"}'] == 2, (before, after)
    assert after['pilot_xds_pushes{type="lds"}'] == before['pilot_xds_pushes{type="lds"}']
    assert after['pilot_xds_pushes{type="cds"}'] == before['pilot_xds_pushes{type="cds"}']
    converged = after["pilot_proxy_convergence_time_count"] - before["pilot_proxy_convergence_time_count"]
    assert converged == 2, (before, after)
    assert after['pilot_proxy_convergence_time_bucket{le="30"}'] == after["pilot_proxy_convergence_time_count"]
    assert 0 < after["pilot_proxy_convergence_time_sum"] - before["pilot_proxy_convergence_time_sum"] < 60
