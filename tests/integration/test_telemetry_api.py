"""Telemetry pushed by the control plane: the mesh config's access-log and tracing settings and
Telemetry resources (mesh / namespace / workload), applied by sidecars on hot swap; access
lines parsed for JSON, TEXT and a custom format, a filter expression, sampling 100 vs 0 seen by
an OTLP receiver, metric overrides (a disabled metric, tags added and removed) scraped, and bad
Telemetry refused with file and line."""
import json
import os
import subprocess
import uuid

from conftest import MESHD
from mesh_harness import Client, ControlPlane, http_get, service_entry, wait_until
from test_access_log import ISTIO_TEXT
from test_mesh_config import write_mesh_config
from test_tracing import OTLPReceiver, tags

SERVICES = service_entry("reviews")
REVIEWS = "reviews.default.svc.cluster.local:9080"


def start(mesh, mesh_config, files=None):
    cp = ControlPlane(mesh, {"services.yaml": SERVICES, **(files or {})})
    path = write_mesh_config(cp, mesh_config)
    cp.start(extra_args=["--mesh-config", path])
    client = cp.sidecar("client", with_app=False)
    reviews = cp.sidecar("reviews")
    cp.wait_ready()
    return cp, path, client, reviews


def reload(cp, text, path):
    """Rewrites the mesh config and waits until every proxy took the new version."""
    before = cp.syncz()
    version = cp.config_status()["configVersion"]
    write_mesh_config(cp, text)
    wait_until(lambda: cp.config_status()["configVersion"] > version, 10, what="the mesh config reloaded")
    cp.wait_synced(changed_from=before)


def lines_with(proxy, marker, count=1, timeout=10, text=None):
    """The access lines (of `proxy`'s stdout, or of `text()`) that carry `marker`, once there are `count`."""
    def found():
        got = [l for l in (text or proxy.sidecar.stdout)().splitlines() if marker in l]
        return got if len(got) >= count else None
    return wait_until(found, timeout, what=f"{count} access lines with {marker}")


def request(client, marker, headers=None):
    status, _, body = Client(client.outbound, timeout=10).get(REVIEWS, path=f"/{marker}",
                                                              headers={"x-request-id": marker, **(headers or {})})
    assert status == 200, body


def test_mesh_config_access_log_encodings_format_file_and_off(mesh):
    cp, path, client, reviews = start(mesh, "accessLogFile: /dev/stdout\naccessLogEncoding: JSON\n")

    request(client, "json-1")
    entry = json.loads(lines_with(reviews, "json-1")[0])
    assert entry["path"] == "/json-1" and entry["response_code"] == 200 and entry["request_id"] == "json-1"

    reload(cp, "accessLogFile: /dev/stdout\n", path)
    request(client, "text-1")
    line = lines_with(reviews, "text-1")[0]
    assert ISTIO_TEXT.fullmatch(line), line

    fmt = '%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% user=%REQ(X-USER)% %REQ(X-NONE?X-REQUEST-ID):4%\\n'
    reload(cp, f'accessLogFile: /dev/stdout\naccessLogFormat: "{fmt}"\n', path)
    request(client, "custom-1", {"x-user": "bob"})
    assert lines_with(reviews, "custom-1")[0] == "GET /custom-1 200 user=bob cust"

    log_file = os.path.join(mesh.workdir, "reviews-access.log")
    reload(cp, f"accessLogFile: {log_file}\n", path)
    request(client, "file-1")

    def file_text():
        return open(log_file).read() if os.path.exists(log_file) else ""
    assert ISTIO_TEXT.fullmatch(lines_with(reviews, "file-1", text=file_text)[0])
    assert "file-1" not in reviews.sidecar.stdout()

    # Istio's default: accessLogFile "" logs nothing. A marker request after the off request
    # would be logged if anything were, so its absence is checked once the mesh has settled.
    reload(cp, 'accessLogFile: ""\n', path)
    request(client, "off-1")
    reload(cp, "accessLogFile: /dev/stdout\n", path)
    request(client, "on-again-1")
    lines_with(reviews, "on-again-1")
    assert "off-1" not in reviews.sidecar.stdout() + file_text()


def test_telemetry_filter_and_workload_over_namespace_over_mesh(mesh):
    telemetry = """
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging: [{providers: [{name: envoy}]}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: only-flagged, namespace: default}
spec:
  accessLogging: [{filter: {expression: "request.headers['x-log'] == 'yes' && response.code < 400"}}]
---
apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata: {name: client-quiet, namespace: default}
spec:
  selector: {matchLabels: {app: client}}
  accessLogging: [{disabled: true}]
"""
    cp, path, client, reviews = start(mesh, "trustDomain: cluster.local\n", {"telemetry.yaml": telemetry})
    request(client, "unflagged-1")
    request(client, "flagged-1", {"x-log": "yes"})
    request(client, "flagged-2", {"x-log": "yes"})
    lines_with(reviews, "flagged-", count=2)
    assert "unflagged-1" not in reviews.sidecar.stdout(), "the namespace's filter leaves it out"
    assert "flagged" not in client.sidecar.stdout(), "the workload's Telemetry turns the client's log off"

    # Without the namespace's filter, the mesh-wide one logs everything (hot swap, no restart).
    cp.remove("telemetry.yaml")
    before = cp.syncz()
    version = cp.config_status()["configVersion"]
    cp.write("telemetry.yaml", telemetry.split("---")[0])
    wait_until(lambda: cp.config_status()["configVersion"] > version, 10, what="the Telemetry change accepted")
    cp.wait_synced(changed_from=before)
    request(client, "after-1")
    lines_with(reviews, "after-1")
    lines_with(client, "after-1")


def test_tracing_sampling_from_mesh_config_and_telemetry(mesh):
    receiver = OTLPReceiver()
    try:
        mesh_config = f"""
enableTracing: true
defaultConfig: {{tracing: {{sampling: 100}}}}
defaultProviders: {{tracing: [otel]}}
extensionProviders:
- name: otel
  opentelemetry: {{service: 127.0.0.1, port: {receiver.port}}}
"""
        cp, path, client, reviews = start(mesh, mesh_config)

        def spans_for(rid):
            with receiver.lock:
                return [s for _, s in receiver.spans if tags(s).get("guid:x-request-id") == rid]

        request(client, "sampled-1")
        wait_until(lambda: len(spans_for("sampled-1")) == 2, 15, what="client and server spans")

        # A mesh-wide Telemetry samples nothing; its customTags would show on any span.
        zero = """
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing: [{randomSamplingPercentage: 0, customTags: {team: {literal: {value: blue}}}}]
"""
        cp.apply({"telemetry.yaml": zero})
        unsampled = [f"unsampled-{uuid.uuid4().hex[:8]}" for _ in range(20)]
        for rid in unsampled:
            request(client, rid)
        cp.apply({"telemetry.yaml": zero.replace("randomSamplingPercentage: 0", "randomSamplingPercentage: 100")})
        request(client, "marker-1")
        wait_until(lambda: len(spans_for("marker-1")) == 2, 15, what="the marker's spans")
        assert all(not spans_for(rid) for rid in unsampled)
        assert all(tags(s).get("team") == "blue" for s in spans_for("marker-1"))
    finally:
        receiver.close()


BAD = """apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: bad, namespace: default}
spec:
  tracing:
  - providers: [{name: nowhere}]
  accessLogging:
  - filter: {expression: "response.code >= 'x'"}
"""


def test_bad_telemetry_is_refused_with_file_and_line(mesh, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(BAD)
    r = subprocess.run([MESHD, "validate", "-f", str(f)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert f'{f}:6: Telemetry/default/bad: spec.tracing[0].providers[0].name: unknown provider "nowhere"' in r.stderr, r.stderr
    assert f"{f}:8: Telemetry/default/bad: spec.accessLogging[0].filter.expression: invalid expression" in r.stderr

    # The provider exists in this mesh config: only the expression is wrong then.
    mesh_config = tmp_path / "mesh.yaml"
    mesh_config.write_text("extensionProviders:\n- name: nowhere\n  opentelemetry: {service: 127.0.0.1, port: 4318}\n")
    r = subprocess.run([MESHD, "validate", "-f", str(f), "--mesh-config", str(mesh_config)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "unknown provider" not in r.stderr and "invalid expression" in r.stderr, r.stderr

    # A running control plane refuses the file at its line and keeps serving.
    cp = ControlPlane(mesh, {"services.yaml": SERVICES})
    cp.start()
    cp.write("bad.yaml", BAD)
    bad = os.path.join(cp.config_dir, "bad.yaml")
    wait_until(lambda: any(e.startswith(f"{bad}:6:") and "unknown provider" in e
                           for e in cp.config_status()["refused"]), 10, what="the bad Telemetry refused")


def istio_series(proxy, name):
    """`name`'s series on `proxy`'s /stats/prometheus, as label dicts."""
    status, text = http_get(f"http://127.0.0.1:{proxy.admin}/stats/prometheus")
    assert status == 200
    out = []
    for line in text.splitlines():
        if line.startswith(name + "{"):
            inner = line[len(name) + 1:line.rindex("}")]
            out.append(dict((k, v.strip('"')) for k, v in (pair.split("=", 1) for pair in inner.split('",') if pair)))
    return out


def test_metric_overrides_disable_a_metric_and_add_and_remove_labels(mesh):
    telemetry = """
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: reviews-metrics, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_DURATION}
      disabled: true
    - match: {metric: REQUEST_COUNT, mode: SERVER}
      tagOverrides:
        x_user: {value: "request.headers['x-user']"}
        request_protocol: {operation: REMOVE}
"""
    cp, path, client, reviews = start(mesh, "trustDomain: cluster.local\n", {"telemetry.yaml": telemetry})
    request(client, "m-1", {"x-user": "alice"})
    request(client, "m-2", {"x-user": "alice"})
    request(client, "m-3")

    def served():
        got = [s for s in istio_series(reviews, "istio_requests_total") if s["reporter"] == "destination"]
        return got if len(got) == 2 else None
    series = wait_until(served, 10, what="reviews' two request series")
    assert sorted(s["x_user"] for s in series) == ["alice", "unknown"], series
    assert all("request_protocol" not in s for s in series), series
    assert istio_series(reviews, "istio_request_duration_milliseconds_count") == [], "disabled for reviews"
    assert istio_series(reviews, "istio_request_bytes_count"), "the other metrics stay"
    # The client's sidecar is not selected: its series keep Istio's labels and durations.
    client_series = wait_until(lambda: istio_series(client, "istio_requests_total"), 10, what="the client's series")
    assert all(s["request_protocol"] == "http" and "x_user" not in s for s in client_series), client_series
    assert istio_series(client, "istio_request_duration_milliseconds_count")
