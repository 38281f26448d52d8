"""The control plane's mesh page: `/api/graph` (workloads and services, each edge's rate, error
ratio, p99 and mTLS, from the proxies' Istio metrics, and every proxy's sync state and plugins)
and the page at `/`, loaded in a real headless Chromium (Debian `chromium`): its DOM shows the
edges with non-zero rates and the mTLS mark. A screenshot is kept in the test's tmp directory."""
import html.parser
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import MESHD
from mesh_harness import ControlPlane, Load, get_json, service_entry, tally, wait_until
from test_identity import REVIEWS, SERVICES, STRICT, mesh_sidecar

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)

PLUGIN = """
apiVersion: extensions.meshd.io/v1alpha1
kind: LuaPlugin
metadata: {name: reviews-stamp}
spec:
  selector: {matchLabels: {app: reviews}}
  inline: |
    function envoy_on_response(handle) handle:headers():add("x-stamp", "1") end
"""
SOURCE = "workload:productpage-v1.default"
SERVICE = "service:reviews.default.svc.cluster.local"
TARGET = "workload:reviews-v1.default"


def start_mesh(mesh):
    """productpage's sidecar calling reviews over mutual TLS; the graph scraped every 0.5 s."""
    files = {"services.yaml": SERVICES, "peer.yaml": STRICT, "plugin.yaml": PLUGIN}
    cp = ControlPlane(mesh, files).start(extra_args=("--graph-scrape-interval-ms", "500"))
    productpage = mesh_sidecar(cp, "productpage")
    mesh_sidecar(cp, "reviews")
    cp.wait_ready(timeout=60)
    return cp, productpage


def graph(cp):
    return get_json(f"http://127.0.0.1:{cp.status_port}/api/graph")


def edge(g, source, target):
    return next((e for e in g["edges"] if e["source"] == source and e["target"] == target), None)


def wait_edges(cp, condition, what):
    def check():
        g = graph(cp)
        return g if condition(g) else None
    try:
        return wait_until(check, timeout=60, interval=0.25, what=what)
    except TimeoutError:
        raise AssertionError(f"{what}: /api/graph is {json.dumps(graph(cp), indent=1)[:4000]}")


def test_api_graph_has_rates_errors_p99_mtls_and_proxies(mesh):
    cp, productpage = start_mesh(mesh)
    with Load(productpage.outbound, REVIEWS, threads=2, max_seconds=90, pause=0.02) as load:
        load.wait_requests(20, timeout=30)
        busy = wait_edges(cp, lambda g: all((edge(g, *hop) or {}).get("requestsPerSecond", 0) > 0
                                            for hop in ((SOURCE, SERVICE), (SERVICE, TARGET))),
                          "both hops with traffic")
        # Some 500s: the hop's error ratio follows (Istio's dashboards: response_code 5xx).
        assert tally(productpage.outbound, REVIEWS, 10, path="/status/500") == {"status 500: ": 10}
        failing = wait_edges(cp, lambda g: (edge(g, SOURCE, SERVICE) or {}).get("errorRatio", 0) > 0, "errors seen")
    assert load.failures() == []

    assert set(busy) >= {"generatedAt", "windowSeconds", "scrapeIntervalSeconds", "nodes", "edges", "proxies"}
    assert busy["scrapeIntervalSeconds"] == 0.5 and 0 < busy["windowSeconds"] <= 2.5 + 0.5
    nodes = {n["id"]: n for n in busy["nodes"]}
    assert nodes[SOURCE]["kind"] == "workload" and nodes[TARGET]["kind"] == "workload"
    assert nodes[SERVICE] == {"id": SERVICE, "kind": "service", "name": "reviews", "namespace": "default",
                              "layer": nodes[SOURCE]["layer"] + 1}
    assert nodes[TARGET]["layer"] == nodes[SERVICE]["layer"] + 1
    for hop in ((SOURCE, SERVICE), (SERVICE, TARGET)):
        e = edge(busy, *hop)
        assert e["connectionSecurityPolicy"] == "mutual_tls", e
        assert e["requestsPerSecond"] > 0 and e["errorsPerSecond"] == 0 and e["errorRatio"] == 0, e
        # Loopback and a demo app: above zero, and within the finite buckets even on a busy machine.
        assert 0 < e["p99Milliseconds"] < 10_000, e
    e = edge(failing, SOURCE, SERVICE)
    assert 0 < e["errorRatio"] < 1 and e["errorsPerSecond"] > 0, e

    proxies = {p["name"]: p for p in busy["proxies"]}
    assert set(proxies) == {"productpage-v1", "reviews-v1"}
    for p in proxies.values():
        assert p["syncStatus"] == "SYNCED" and p["scrape"] == "ok" and "nackReason" not in p, p
    assert proxies["reviews-v1"]["plugins"] and all("reviews-stamp" in n for n in proxies["reviews-v1"]["plugins"])
    assert proxies["productpage-v1"]["plugins"] == []


class EdgeCollector(html.parser.HTMLParser):
    """The page's SVG edges (their data-* attributes and text) and its table rows."""

    def __init__(self):
        super().__init__()
        self.edges, self.rows, self._edge, self._row = [], [], None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "g" and "edge" in (a.get("class") or "").split():
            self._edge = {**a, "text": ""}
            self.edges.append(self._edge)
        elif tag == "tr":
            self._row = {"class": a.get("class"), "text": ""}
            self.rows.append(self._row)

    def handle_endtag(self, tag):
        if tag == "g":
            self._edge = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._edge is not None:
            self._edge["text"] += data
        if self._row is not None:
            self._row["text"] += data + " "


def chromium(args, workdir, timeout=90):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", f"--user-data-dir={os.path.join(workdir, 'profile')}", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (Debian package `chromium`; `make test` installs it)")
def test_page_in_headless_chromium_shows_edges_with_rates_and_mtls(mesh, tmp_path):
    cp, productpage = start_mesh(mesh)
    url = f"http://127.0.0.1:{cp.status_port}/"
    workdir = str(tmp_path)
    print(f"\nmesh page artifacts (DOM dump, screenshot) in {workdir}")
    with Load(productpage.outbound, REVIEWS, threads=2, max_seconds=150, pause=0.02) as load:
        load.wait_requests(20, timeout=30)
        wait_edges(cp, lambda g: (edge(g, SERVICE, TARGET) or {}).get("requestsPerSecond", 0) > 0, "traffic in the graph")
        page = None
        deadline = time.time() + 120
        for attempt in range(10):
            # The page draws from the graph it is served with, then polls api/graph every 3 s.
            r = chromium(["--virtual-time-budget=5000", "--dump-dom", url], workdir)
            dom = EdgeCollector()
            dom.feed(r.stdout)
            edges = {(e.get("data-source"), e.get("data-target")): e for e in dom.edges}
            if all(float(edges.get(hop, {}).get("data-rps", 0)) > 0 for hop in ((SOURCE, SERVICE), (SERVICE, TARGET))):
                page = (dom, edges, r.stdout)
                break
            if time.time() > deadline:
                break
        assert page is not None, f"no edges with traffic in the DOM after {attempt + 1} loads: {r.stdout[-3000:]} {r.stderr[-2000:]}"
        shot = os.path.join(workdir, "mesh-page.png")
        s = chromium(["--virtual-time-budget=5000", "--window-size=1280,900", f"--screenshot={shot}", url], workdir)
    dom, edges, text = page
    with open(os.path.join(workdir, "mesh-page.html"), "w") as f:
        f.write(text)
    for hop in ((SOURCE, SERVICE), (SERVICE, TARGET)):
        e = edges[hop]
        assert e["data-security"] == "mutual_tls", e
        assert "mTLS · " in e["text"] and "rps" in e["text"] and "p99" in e["text"], e
    # The tables: the edges (with the mark) and both proxies, SYNCED, the plugin on reviews.
    edge_rows = [r["text"] for r in dom.rows if r["class"] == "edge-row"]
    assert len(edge_rows) == 2 and all(r.split()[-1] == "mTLS" for r in edge_rows), edge_rows
    proxy_rows = {r["text"].split()[0]: r["text"] for r in dom.rows if r["class"] == "proxy-row"}
    assert set(proxy_rows) == {"sidecar~127.0.0.1~productpage-v1.default", "sidecar~127.0.0.1~reviews-v1.default"}
    assert all("SYNCED" in r for r in proxy_rows.values())
    assert "reviews-stamp" in proxy_rows["sidecar~127.0.0.1~reviews-v1.default"]
    assert s.returncode == 0 and os.path.getsize(shot) > 10_000, s.stderr[-2000:]


def test_dashboard_command_prints_the_page_url(mesh):
    cp = ControlPlane(mesh, {"services.yaml": service_entry("reviews")}).start()
    r = subprocess.run([MESHD, "dashboard", "--control-plane", f"127.0.0.1:{cp.status_port}"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and r.stdout == f"http://127.0.0.1:{cp.status_port}/\n" and r.stderr == "", r
    page = subprocess.run(["curl", "-sS", "--max-time", "10", r.stdout.strip()], capture_output=True, text=True, timeout=20)
    assert '<svg id="graph"' in page.stdout
    # Self-contained: no script, style or image from elsewhere (the SVG namespace is a name, not a load).
    assert "src=" not in page.stdout and "<link" not in page.stdout
    assert page.stdout.count("http") == page.stdout.count("http://www.w3.org/2000/svg")
