"""Cluster circuit breakers (Envoy's max_connections / max_pending_requests / max_requests):
a concurrency burst over a limit is answered at once with 503, flag UO and
`x-envoy-overloaded: true`, and the limit holds across event loops."""
import threading
import time

from conftest import free_port
from mesh_harness import wait_until
from test_retries_mirror import config, route, scripted, seen


def get(port, path, timeout=20.0):
    """(status, headers, body, seconds) of one GET on its own connection; status None when broken."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request("GET", path, headers={"Host": "app"})
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body, time.monotonic() - started
    except OSError as e:
        return None, {}, repr(e).encode(), time.monotonic() - started
    finally:
        conn.close()


def burst(port, paths):
    """Sends every path at once, each on its own connection; their results, in order."""
    results = [None] * len(paths)

    def one(i, path):
        results[i] = get(port, path)

    threads = [threading.Thread(target=one, args=(i, p)) for i, p in enumerate(paths)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r is not None for r in results), "a request of the burst did not finish"
    return results


def test_max_requests_bounds_a_burst_across_loops(mesh):
    up = scripted(mesh, "slow")
    port = free_port()
    cfg = config(port, up, [route("/hang", timeout_ms=4000), route("/")])
    cfg["clusters"][0]["maxRequests"] = 2
    proxy = mesh.proxy(cfg, concurrency=4)
    results = burst(port, [f"/hang/{i}" for i in range(10)])
    overflowed = [r for r in results if r[0] == 503]
    timed_out = [r for r in results if r[0] == 504]
    # Two requests reach the upstream (and time out there); every other one overflows, at once.
    assert len(timed_out) == 2 and len(overflowed) == 8, [r[0] for r in results]
    for status, headers, body, took in overflowed:
        assert headers.get("x-envoy-overloaded") == "true", headers
        assert body == b"upstream connect error or disconnect/reset before headers. reset reason: overflow"
        assert took < 2.5, took
    assert len([s for s in seen(up) if s["path"].startswith("/hang")]) == 2
    assert proxy.stat("meshd_upstream_rq_pending_overflow_total") == 8
    lines = proxy.access_log(wait_lines=10)
    assert sum("UO" in line for line in lines) == 8, lines

    # The slots come back when the requests end: the next request goes through.
    wait_until(lambda: get(port, "/ok")[0] == 200, 10, what="a request after the burst")


def test_pending_requests_overflow_when_the_only_connection_is_busy(mesh):
    up = scripted(mesh, "slow")
    port = free_port()
    cfg = config(port, up, [route("/hang", timeout_ms=4000), route("/")])
    cfg["clusters"][0].update({"maxConnections": 1, "maxPendingRequests": 1})
    # One loop: its pool holds the cluster's only connection (a pool with none would open one).
    proxy = mesh.proxy(cfg, concurrency=1)
    first = []
    holder = threading.Thread(target=lambda: first.append(get(port, "/hang/first")))
    holder.start()
    wait_until(lambda: any(s["path"] == "/hang/first" for s in seen(up)), 10, what="first request upstream")
    # The connection is busy: one more request waits for it, the others overflow at once.
    results = burst(port, [f"/after/{i}" for i in range(5)])
    holder.join(30)
    statuses = sorted(r[0] for r in results)
    assert statuses == [200, 503, 503, 503, 503], statuses
    for status, headers, _, took in results:
        if status == 503:
            assert headers.get("x-envoy-overloaded") == "true" and took < 1.5, (headers, took)
    assert first and first[0][0] == 504
    assert proxy.stat("meshd_upstream_rq_pending_overflow_total") == 4
    assert proxy.stat("meshd_upstream_cx_overflow_total") >= 1


def test_max_requests_per_connection_closes_an_http1_connection_after_its_requests(mesh):
    up = scripted(mesh, "app")
    port = free_port()
    cfg = config(port, up, [route("/")])
    cfg["clusters"][0]["maxRequestsPerConnection"] = 2
    cfg["clusters"].append({"name": "reused", "endpoints": [{"address": "127.0.0.1", "port": up}]})
    cfg["routeConfigs"][0]["virtualHosts"][0]["routes"].insert(0, route("/reused", cluster="reused"))
    mesh.proxy(cfg, concurrency=1)
    for i in range(6):
        assert get(port, f"/limited/{i}")[0] == 200
        assert get(port, f"/reused/{i}")[0] == 200
    ports = lambda prefix: [s["peer_port"] for s in seen(up) if s["path"].startswith(prefix)]
    limited = ports("/limited")
    assert len(limited) == 6 and len(set(limited)) == 3, limited
    assert limited[0] == limited[1] and limited[2] == limited[3] and limited[4] == limited[5], limited
    # Without the setting, the keep-alive connection carries them all.
    assert len(set(ports("/reused"))) == 1, ports("/reused")
