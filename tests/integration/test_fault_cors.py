"""VirtualService fault injection and CORS end to end: the control plane translates `fault` and
`corsPolicy` into the native meshd.fault / meshd.cors filters of the sidecars and gateways, and
requests through them behave as in Istio (delays measured by the client, aborts with their
status, `DI` / `FI` in the access log, preflights answered by the proxy)."""
import os
import time

import pytest

from conftest import free_port, simple_config, wait_for_port
from mesh_harness import Client, ControlPlane, service_entry, wait_until

# Istio's sample files (not part of this repository): the directory MESHD_ISTIO_SAMPLES names.
SAMPLES = os.environ.get("MESHD_ISTIO_SAMPLES", "")
needs_samples = pytest.mark.skipif(not SAMPLES or not os.path.isdir(SAMPLES),
                                   reason="Istio samples not available (set MESHD_ISTIO_SAMPLES)")

SERVICES = service_entry("ratings") + "---" + service_entry("details")

SUBSETS = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  subsets: [{name: v1, labels: {version: v1}}]
"""


def sample(name):
    with open(os.path.join(SAMPLES, name)) as f:
        return f.read()


def start(mesh, files, gateway=False):
    """Control plane on `files`, ratings-v1 and details-v1 behind sidecars, a client sidecar
    (and a gateway); waits until every proxy is ready and the mesh converged."""
    cp = ControlPlane(mesh, {"services.yaml": SERVICES, **files})
    cp.start()
    client = cp.sidecar("client", "v1", with_app=False)
    cp.sidecar("ratings", "v1")
    cp.sidecar("details", "v1")
    if gateway:
        cp.gateway()
    cp.wait_ready()
    return cp, client


def timed_get(port, host, headers=None, path="/", timeout=30.0):
    """(status, headers, body, seconds) of one request on a fresh connection."""
    c = Client(port, timeout=timeout)
    try:
        start = time.monotonic()
        status, hdrs, body = c.get(host, path, headers)
        return status, hdrs, body, time.monotonic() - start
    finally:
        c.close()


def access_log_lines(proxy, needle):
    """The proxy's access-log lines (its stdout, flushed every 50 ms) that contain `needle`."""
    return [line for line in proxy.sidecar.stdout().splitlines() if needle in line]


def wait_for_log(proxy, needle, timeout=10):
    return wait_until(lambda: access_log_lines(proxy, needle), timeout, what=f"access log line with {needle!r}")


def ratings_fault(fault):
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: ratings}}
spec:
  hosts: [ratings]
  http:
  - match: [{{headers: {{x-fault: {{exact: "yes"}}}}}}]
    fault: {fault}
    route: [{{destination: {{host: ratings, subset: v1}}}}]
  - route: [{{destination: {{host: ratings, subset: v1}}}}]
"""


def test_small_delay_is_measured_by_the_client_and_logged(mesh):
    cp, client = start(mesh, {"subsets.yaml": SUBSETS,
                              "ratings.yaml": ratings_fault("{delay: {fixedDelay: 400ms, percentage: {value: 100}}}")})
    for _ in range(3):
        status, headers, _, seconds = timed_get(client.outbound, "ratings", {"x-fault": "yes"}, path="/delayed")
        assert status == 200 and headers.get("x-service") == "ratings-v1"
        assert seconds >= 0.4, f"answered after {seconds:.3f}s, before the 400 ms delay"
    # Another route of the same host is not delayed.
    status, _, _, seconds = timed_get(client.outbound, "ratings", path="/plain")
    assert status == 200 and seconds < 0.4, seconds
    lines = wait_for_log(client, '"GET /delayed')
    assert all(" 200 DI " in line for line in lines), lines
    assert " 200 - " in wait_for_log(client, '"GET /plain')[0]


def test_fractional_abort_percentage(mesh):
    cp, client = start(mesh, {"subsets.yaml": SUBSETS,
                              "ratings.yaml": ratings_fault("{abort: {httpStatus: 503, percentage: {value: 50}}}")})
    c = Client(client.outbound)
    statuses = []
    try:
        for _ in range(200):
            statuses.append(c.get("ratings", "/", {"x-fault": "yes"})[0])
    finally:
        c.close()
    aborted = statuses.count(503)
    assert set(statuses) <= {200, 503}
    # 50 % of 200: 100 expected, sd about 7; well inside 60..140.
    assert 60 <= aborted <= 140, aborted


@needs_samples
def test_istio_sample_ratings_test_delay(mesh):
    """virtual-service-ratings-test-delay: requests from `end-user: jason` wait 7 s."""
    cp, client = start(mesh, {"destination-rule-all.yaml": sample("destination-rule-all.yaml"),
                              "ratings.yaml": sample("virtual-service-ratings-test-delay.yaml")})
    status, headers, _, seconds = timed_get(client.outbound, "ratings", {"end-user": "jason"}, path="/jason")
    assert status == 200 and headers.get("x-service") == "ratings-v1"
    assert 7.0 <= seconds < 20.0, seconds
    status, headers, _, seconds = timed_get(client.outbound, "ratings", {"end-user": "alice"}, path="/alice")
    assert status == 200 and headers.get("x-service") == "ratings-v1"
    assert seconds < 7.0, seconds
    assert " 200 DI " in wait_for_log(client, '"GET /jason')[0]


@needs_samples
def test_istio_sample_ratings_test_abort(mesh):
    """virtual-service-ratings-test-abort: `end-user: jason` gets 500 from the proxy."""
    cp, client = start(mesh, {"destination-rule-all.yaml": sample("destination-rule-all.yaml"),
                              "ratings.yaml": sample("virtual-service-ratings-test-abort.yaml")})
    status, headers, body, _ = timed_get(client.outbound, "ratings", {"end-user": "jason"}, path="/jason")
    assert (status, body) == (500, b"fault filter abort")
    assert "x-service" not in headers, "the app was never asked"
    status, headers, _, _ = timed_get(client.outbound, "ratings", {"end-user": "alice"}, path="/alice")
    assert status == 200 and headers.get("x-service") == "ratings-v1"
    assert " 500 FI " in wait_for_log(client, '"GET /jason')[0]
    assert " 200 - " in wait_for_log(client, '"GET /alice')[0]


@needs_samples
def test_istio_sample_fault_injection_details_v1(mesh):
    """fault-injection-details-v1: every request to details is answered 555."""
    cp, client = start(mesh, {"details.yaml": sample("fault-injection-details-v1.yaml")})
    c = Client(client.outbound)
    try:
        answers = [c.get("details", f"/details/{i}")[::2] for i in range(20)]
    finally:
        c.close()
    assert answers == [(555, b"fault filter abort")] * 20
    lines = wait_until(lambda: len(access_log_lines(client, '"GET /details/')) >= 20 and
                       access_log_lines(client, '"GET /details/'), 10, what="20 access log lines")
    assert all(" 555 FI " in line for line in lines), lines


# PORT: the gateway's listener port.
CORS_GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: PORT, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ingress}
spec:
  hosts: ["*"]
  gateways: [ingress]
  http:
  - match: [{uri: {prefix: /strict}}]
    corsPolicy:
      allowOrigins: [{exact: "https://app.example"}]
      allowMethods: [GET]
      unmatchedPreflights: IGNORE
    route: [{destination: {host: ratings, port: {number: 9080}}}]
  - corsPolicy:
      allowOrigins: [{exact: "https://app.example"}, {regex: "https://[a-z]+\\\\.partner\\\\.example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom]
      exposeHeaders: [x-service]
      maxAge: 1h
      allowCredentials: true
    route: [{destination: {host: ratings, port: {number: 9080}}}]
"""


def options(port, path, headers):
    """An OPTIONS request through the gateway: (status, headers)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("OPTIONS", path, headers={"Host": "bookinfo.example", **headers})
        r = conn.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def test_cors_preflight_and_actual_requests_through_the_gateway(mesh):
    port = free_port()
    cp, _ = start(mesh, {"gateway.yaml": CORS_GATEWAY.replace("PORT", str(port))}, gateway=True)
    wait_for_port(port)
    wait_until(lambda: timed_get(port, "bookinfo.example", timeout=5)[0] == 200, 10, what="gateway serving")
    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "x-custom"}

    # An allowed origin: the proxy answers, the app never sees it.
    status, h = options(port, "/api", {"origin": "https://blue.partner.example", **preflight})
    assert status == 200
    assert "x-service" not in h, "the preflight reached the app"
    assert h.get("access-control-allow-origin") == "https://blue.partner.example"
    assert h.get("access-control-allow-methods") == "GET,POST"
    assert h.get("access-control-allow-headers") == "x-custom"
    assert h.get("access-control-max-age") == "3600"
    assert h.get("access-control-allow-credentials") == "true"

    # A disallowed origin (Istio's default, unmatchedPreflights unset): forwarded to the app,
    # and its answer gets no CORS headers.
    status, h = options(port, "/api", {"origin": "https://evil.example", **preflight})
    assert h.get("x-service") == "ratings-v1"
    assert not [k for k in h if k.startswith("access-control-")], h

    # unmatchedPreflights: IGNORE: the proxy answers, without allowing the origin.
    status, h = options(port, "/strict", {"origin": "https://evil.example", **preflight})
    assert status == 200 and "x-service" not in h
    assert "access-control-allow-origin" not in h

    # Actual requests: the allowed origin gets the response headers, another origin none.
    status, h, _, _ = timed_get(port, "bookinfo.example", {"origin": "https://app.example"}, path="/api")
    assert status == 200 and h.get("x-service") == "ratings-v1"
    assert h.get("access-control-allow-origin") == "https://app.example"
    assert h.get("access-control-expose-headers") == "x-service"
    assert h.get("access-control-allow-credentials") == "true"
    status, h, _, _ = timed_get(port, "bookinfo.example", {"origin": "https://evil.example"}, path="/api")
    assert status == 200 and h.get("x-service") == "ratings-v1"
    assert not [k for k in h if k.startswith("access-control-")], h


# -- the proxy alone (bootstrap config): gRPC aborts, the loop during a delay, counters

def fault_routes(faults):
    """A route per (prefix, fault) with its meshd.fault config, then a plain default route."""
    routes = [{"name": prefix.strip("/"), "match": {"prefix": prefix}, "route": {"cluster": "app"},
               "perFilterConfig": {"meshd.fault": fault}} for prefix, fault in faults]
    return routes + [{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "app"}}]


def test_grpc_abort_is_a_trailers_only_answer(mesh):
    import grpc
    import sys
    backend = free_port()
    here = os.path.dirname(os.path.abspath(__file__))
    mesh.start([sys.executable, os.path.join(here, "grpc_peer.py"), str(backend)], "grpc-server")
    wait_for_port(backend)
    port = free_port()
    proxy = mesh.proxy(simple_config(port, backend, filters=[{"name": "meshd.fault"}], routes=fault_routes([
        ("/meshd.test.Echo/Fail", {"abort": {"grpcStatus": 14, "percentage": 100}})]),
        clusters=[{"name": "app", "protocol": "HTTP2", "endpoints": [{"address": "127.0.0.1", "port": backend}]}]))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(grpc.RpcError) as failure:
            channel.unary_unary("/meshd.test.Echo/Fail")(b"x", timeout=10)
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        assert failure.value.details() == "fault filter abort"
        assert channel.unary_unary("/meshd.test.Echo/Echo")(b"hi", timeout=10) == b"echo:hi"
    assert '"POST /meshd.test.Echo/Fail HTTP/2" 200 FI' in "\n".join(proxy.access_log(wait_lines=2))
    assert proxy.stat("meshd_fault_aborts_injected_total") == 1
    assert proxy.stat('meshd_upstream_rq_completed_total{cluster="app",response_code="200"}') == 1


def test_a_delayed_request_does_not_hold_up_its_loop(mesh):
    """One loop: while a request waits out a 1.5 s delay, others on the same loop are answered."""
    import threading
    up = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up, filters=[{"name": "meshd.fault"}], routes=fault_routes([
        ("/slow", {"delay": {"fixedDelayMs": 1500, "percentage": 100}})])), concurrency=1)
    slow = {}

    def send_slow():
        slow["status"], _, _, slow["seconds"] = timed_get(port, "a", path="/slow")
        slow["done"] = time.monotonic()
    t = threading.Thread(target=send_slow)
    t.start()
    try:
        proxy.wait_active_requests(1)
        fast = [timed_get(port, "a", path=f"/fast/{i}")[0] for i in range(5)]
        fast_done = time.monotonic()
    finally:
        t.join(timeout=30)
    assert fast == [200] * 5
    assert slow.get("status") == 200 and slow["seconds"] >= 1.5, slow
    assert fast_done < slow["done"], "the other requests waited for the delayed one"
    assert proxy.stat("meshd_fault_delays_injected_total") == 1
