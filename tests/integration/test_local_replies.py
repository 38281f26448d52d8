"""What a client reads when the proxy answers for the upstream: Envoy's short bodies, never
an internal error text with addresses; the detail goes to the access log's
upstream_transport_failure_reason."""
import json
import time

from conftest import free_port, simple_config
from mesh_harness import http_get

PREFIX = "upstream connect error or disconnect/reset before headers. reset reason: "


def get(port, path="/"):
    return http_get(f"http://127.0.0.1:{port}{path}", timeout=15)


def wait_entries(proxy, n, timeout=5):
    """The JSON access-log entries, once there are `n` (or the timeout passed)."""
    deadline = time.time() + timeout
    while True:
        lines = [l for l in proxy.process.stdout().splitlines() if l.startswith("{")]
        if len(lines) >= n or time.time() > deadline:
            return [json.loads(l) for l in lines]
        time.sleep(0.05)


def test_connect_failure_body_is_envoys_and_detail_goes_to_the_access_log(mesh):
    port, dead = free_port(), free_port()  # nothing listens on `dead`
    config = simple_config(port, dead)
    config["accessLogEncoding"] = "JSON"
    proxy = mesh.proxy(config)
    status, body = get(port)
    assert (status, body) == (503, PREFIX + "connection failure")
    [entry] = wait_entries(proxy, 1)
    assert entry["response_flags"] == "UF"
    assert entry["upstream_transport_failure_reason"], entry


def test_reset_before_headers(mesh):
    up = mesh.upstream()
    port = free_port()
    mesh.proxy(simple_config(port, up))
    assert get(port, "/reset") == (502, PREFIX + "connection termination")


def test_no_endpoints_is_no_healthy_upstream(mesh):
    port = free_port()
    config = simple_config(port, 1, clusters=[{"name": "app", "endpoints": []}])
    mesh.proxy(config)
    assert get(port) == (503, "no healthy upstream")


def test_route_timeout_and_no_route(mesh):
    up = mesh.upstream()
    port = free_port()
    routes = [{"name": "slow", "match": {"prefix": "/delay"}, "route": {"cluster": "app", "timeoutMs": 200}}]
    config = simple_config(port, up, routes=routes)
    mesh.proxy(config)
    assert get(port, "/delay/3000") == (504, "upstream request timeout")
    assert get(port, "/elsewhere") == (404, "")
