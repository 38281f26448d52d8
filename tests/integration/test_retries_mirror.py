"""Router retries and request mirroring against upstreams that fail on purpose
(scripted_upstream.py): Envoy's retry_policy semantics, Istio's default policy through the
control plane, and fire-and-forget mirrors with a `-shadow` host."""
import http.client
import json
import os
import socket
import sys
import time

from conftest import curl, free_port, wait_for_port
from mesh_harness import ControlPlane, service_entry, wait_until

SCRIPT = os.path.join(os.path.dirname(__file__), "scripted_upstream.py")


def scripted(mesh, name, *mode):
    port = free_port()
    mesh.start([sys.executable, SCRIPT, str(port), name, *mode], f"scripted-{name}")
    wait_for_port(port)
    return port


def seen(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/__seen")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def send(port, path, method="GET", body=None, host="app", timeout=10.0):
    """(status, body, seconds) of one request on its own connection; status None on a broken exchange."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request(method, path, body=body, headers={"Host": host})
        r = conn.getresponse()
        data = r.read()
        return r.status, data, time.monotonic() - started
    except (OSError, http.client.HTTPException) as e:
        return None, repr(e).encode(), time.monotonic() - started
    finally:
        conn.close()


def route(prefix, retry=None, timeout_ms=None, mirrors=None, cluster="app"):
    action = {"cluster": cluster}
    if retry is not None:
        action["retryPolicy"] = retry
    if timeout_ms is not None:
        action["timeoutMs"] = timeout_ms
    if mirrors is not None:
        action["requestMirrorPolicies"] = mirrors
    return {"name": prefix.strip("/") or "root", "match": {"prefix": prefix}, "route": action}


def config(port, up, routes, listener_extra=None, clusters=None):
    listener = {"name": "main", "address": "127.0.0.1", "port": port, "routeConfig": "main"}
    listener.update(listener_extra or {})
    return {
        "listeners": [listener],
        "routeConfigs": [{"name": "main", "virtualHosts": [{"name": "all", "domains": ["*"], "routes": routes,
                                                            "includeRequestAttemptCount": True}]}],
        "clusters": [{"name": "app", "endpoints": [{"address": "127.0.0.1", "port": up}]}] + (clusters or []),
    }


FIVE_XX = {"retryOn": "5xx", "numRetries": 2}


def test_retries_turn_an_upstream_failing_every_other_request_into_full_success(mesh):
    up = scripted(mesh, "flaky")
    port = free_port()
    proxy = mesh.proxy(config(port, up, [route("/flaky-retried", FIVE_XX), route("/flaky-plain")]))
    n = 100
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    statuses = []
    for _ in range(n):
        conn.request("GET", "/flaky-retried", headers={"Host": "app"})
        r = conn.getresponse()
        r.read()
        statuses.append(r.status)
    assert statuses == [200] * n
    # Without a policy the same upstream fails half the time.
    plain = [send(port, "/flaky-plain")[0] for _ in range(20)]
    assert plain.count(503) == 10 and plain.count(200) == 10
    assert proxy.stat("meshd_upstream_rq_retry_total") == n
    assert proxy.stat("meshd_upstream_rq_retry_success_total") == n
    assert proxy.stat("meshd_upstream_rq_retry_limit_exceeded_total") == 0
    # Each retried request reached the upstream twice, with the same request id.
    retried = [s for s in seen(up) if s["path"] == "/flaky-retried"]
    assert len(retried) == 2 * n
    assert len({s["request_id"] for s in retried}) == n
    assert [s["attempt"] for s in retried] == ["1", "2"] * n
    # The same over HTTP/2 from the client, a POST body replayed on each retry.
    for i in range(5):
        r = curl("--http2-prior-knowledge", "-s", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                 "--data-binary", "x" * 3000, f"http://127.0.0.1:{port}/flaky-retried-h2")
        assert r.stdout == b"200 2", r
    assert [s["bytes"] for s in seen(up) if s["path"] == "/flaky-retried-h2"] == [3000] * 10


def test_attempts_exhausted_give_the_last_answer_and_URX(mesh):
    up = scripted(mesh, "failing")
    port = free_port()
    proxy = mesh.proxy(config(port, up, [route("/fail", FIVE_XX)]))
    status, body, _ = send(port, "/fail")
    assert status == 503 and body == b"failing on purpose"
    assert len([s for s in seen(up) if s["path"] == "/fail"]) == 3
    line = proxy.access_log(wait_lines=1)[0]
    assert " 503 " in line and "URX" in line, line
    assert proxy.stat("meshd_upstream_rq_retry_total") == 2
    assert proxy.stat("meshd_upstream_rq_retry_limit_exceeded_total") == 1


def test_connect_failure_is_retried_on_another_endpoint(mesh):
    up = scripted(mesh, "alive")
    dead = free_port()  # nothing listens there
    port = free_port()
    cfg = config(port, up, [route("/", {"retryOn": "connect-failure", "numRetries": 1, "retryOtherHosts": True})])
    cfg["clusters"][0]["endpoints"].insert(0, {"address": "127.0.0.1", "port": dead})
    cfg["clusters"][0]["lbPolicy"] = "RANDOM"
    proxy = mesh.proxy(cfg)
    statuses = [send(port, "/any")[0] for _ in range(30)]
    # A first pick of the dead endpoint is retried on the live one, never on itself.
    assert statuses == [200] * 30
    assert proxy.stat("meshd_upstream_rq_retry_total") >= 1


def test_body_over_the_replay_limit_is_delivered_once_and_not_retried(mesh):
    up = scripted(mesh, "flaky")
    port = free_port()
    proxy = mesh.proxy(config(port, up, [route("/flaky", FIVE_XX)],
                              listener_extra={"perConnectionBufferLimitBytes": 65536}))
    big = b"b" * 200_000
    status, body, _ = send(port, "/flaky-big", "POST", big)
    # The upstream's first answer (503) stands: the body could not be replayed.
    assert status == 503, body
    big_seen = [s for s in seen(up) if s["path"] == "/flaky-big"]
    assert [s["bytes"] for s in big_seen] == [200_000]
    assert proxy.stat("meshd_upstream_rq_retry_or_shadow_abandoned_total") == 1
    assert proxy.stat("meshd_upstream_rq_retry_total") == 0
    # A body under the limit is replayed whole.
    small = b"s" * 10_000
    status, body, _ = send(port, "/flaky-small", "POST", small)
    assert status == 200 and body == b"flaky 2"
    assert [s["bytes"] for s in seen(up) if s["path"] == "/flaky-small"] == [10_000, 10_000]


def test_body_still_arriving_during_a_retry_reaches_the_next_attempt_whole(mesh):
    up = scripted(mesh, "early")
    port = free_port()
    proxy = mesh.proxy(config(port, up, [route("/early", {"retryOn": "5xx,reset", "numRetries": 2})]))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /early HTTP/1.1\r\nHost: app\r\ncontent-length: 20000\r\n\r\n" + b"a" * 5000)
        # The first attempt failed on the first part: the retry replays it, the rest follows.
        wait_until(lambda: proxy.stat("meshd_upstream_rq_retry_total") == 1, 10, what="a retry")
        s.sendall(b"z" * 15000)
        answer = b""
        while not answer.endswith(b"early got 20000"):
            chunk = s.recv(65536)
            assert chunk, answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    assert [e["bytes"] for e in seen(up) if e["path"] == "/early"] == [None, 20000]


def test_reset_after_the_response_started_is_not_retried(mesh):
    up = scripted(mesh, "cutting")
    port = free_port()
    proxy = mesh.proxy(config(port, up, [route("/cut", {"retryOn": "5xx,reset", "numRetries": 3})]))
    status, body, _ = send(port, "/cut")
    assert status is None, body  # the head came through, then the stream broke
    assert len([s for s in seen(up) if s["path"] == "/cut"]) == 1
    assert proxy.stat("meshd_upstream_rq_retry_total") == 0
    line = proxy.access_log(wait_lines=1)[0]
    assert "URX" not in line, line


def test_per_try_timeout_moves_on_to_the_next_attempt(mesh):
    up = scripted(mesh, "slow")
    port = free_port()
    per_try = {"retryOn": "5xx", "numRetries": 1, "perTryTimeoutMs": 300}
    proxy = mesh.proxy(config(port, up, [route("/hang-first", per_try, timeout_ms=20_000),
                                         route("/hang", per_try, timeout_ms=20_000)]))
    # The first attempt hangs 5 s; the second answers at once.
    status, body, took = send(port, "/hang-first")
    assert status == 200 and body == b"slow 2", body
    assert took < 4.0, took
    # Every attempt hangs: 504 after two per-try timeouts, well before the route timeout.
    status, body, took = send(port, "/hang")
    assert status == 504 and body == b"upstream request timeout"
    assert took < 4.0, took
    lines = proxy.access_log(wait_lines=2)
    assert "UT" in lines[-1] and "URX" in lines[-1], lines
    assert len([s for s in seen(up) if s["path"] == "/hang"]) == 2


def test_retry_budget_bounds_concurrent_retries(mesh):
    up = scripted(mesh, "failing")
    port = free_port()
    cfg = config(port, up, [route("/", {"retryOn": "5xx", "numRetries": 1}, timeout_ms=10_000)])
    cfg["clusters"][0]["maxRetries"] = 1
    proxy = mesh.proxy(cfg)
    # The first request's retry holds the only retry slot: its first attempt fails, the retry
    # hangs until the route timeout. Every request failing meanwhile overflows the budget.
    import threading
    results = []
    first = threading.Thread(target=lambda: results.append(send(port, "/fail-then-hang", timeout=30)[0]))
    first.start()
    wait_until(lambda: len([s for s in seen(up) if s["path"] == "/fail-then-hang"]) == 2, 10,
               what="the first request's retry reached the upstream")
    statuses = [send(port, "/fail")[0] for _ in range(5)]
    first.join(30)
    assert statuses == [503] * 5, statuses
    assert results == [504], "the held retry ends at the route timeout"
    assert proxy.stat("meshd_upstream_rq_retry_total") == 1
    assert proxy.stat("meshd_upstream_rq_retry_overflow_total") == 5
    assert sum("UO" in line for line in proxy.access_log(wait_lines=6)) == 5


def test_mirror_gets_a_shadow_copy_and_never_delays_the_answer(mesh):
    up = scripted(mesh, "main")
    shadow = scripted(mesh, "shadow")
    hung = scripted(mesh, "hung", "hang")
    port = free_port()
    clusters = [{"name": "mirror", "endpoints": [{"address": "127.0.0.1", "port": shadow}]},
                {"name": "hung", "endpoints": [{"address": "127.0.0.1", "port": hung}]}]
    proxy = mesh.proxy(config(port, up, [
        route("/to-hung", timeout_ms=1500, mirrors=[{"cluster": "hung"}]),
        route("/", timeout_ms=10_000, mirrors=[{"cluster": "mirror"}]),
    ], clusters=clusters))
    status, body, _ = send(port, "/copied", "POST", b"x" * 5000, host="reviews:9080")
    assert status == 200 and body == b"main got 5000"
    copy = wait_until(lambda: [s for s in seen(shadow) if s["path"] == "/copied"], 10, what="mirrored copy")
    assert copy[0]["host"] == "reviews-shadow:9080" and copy[0]["bytes"] == 5000, copy
    assert copy[0]["method"] == "POST"
    assert [s["host"] for s in seen(up) if s["path"] == "/copied"] == ["reviews:9080"]

    # A mirror that never answers: the main answers come at once, the copies are given up
    # after their own timeout (the route's, 1.5 s).
    times = []
    for i in range(5):
        status, body, took = send(port, f"/to-hung/{i}", host="reviews")
        assert status == 200 and body == b"main got 0"
        times.append(took)
    assert max(times) < 1.0, times
    wait_until(lambda: len(seen(hung)) == 5, 10, what="copies at the hung mirror")
    assert {s["host"] for s in seen(hung)} == {"reviews-shadow"}
    wait_until(lambda: proxy.stat("meshd_upstream_rq_mirror_failed_total") == 5, 10, what="hung copies given up")
    assert proxy.stat("meshd_upstream_rq_mirrored_total") == 6


def test_mirror_percentage_copies_a_share(mesh):
    up = scripted(mesh, "main")
    shadow = scripted(mesh, "shadow")
    port = free_port()
    clusters = [{"name": "mirror", "endpoints": [{"address": "127.0.0.1", "port": shadow}]}]
    proxy = mesh.proxy(config(port, up, [route("/none", mirrors=[{"cluster": "mirror", "percent": 0}]),
                                         route("/", mirrors=[{"cluster": "mirror", "percent": 50}])],
                              clusters=clusters))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for path in ["/none"] * 20 + ["/half"] * 200:
        conn.request("GET", path, headers={"Host": "app"})
        r = conn.getresponse()
        r.read()
        assert r.status == 200
    conn.close()
    # Binomial(200, 0.5): outside 70..130 about once in 10^5 runs.
    mirrored = proxy.stat("meshd_upstream_rq_mirrored_total")
    assert 70 <= mirrored <= 130, mirrored
    wait_until(lambda: len(seen(shadow)) == mirrored, 10, what="every copy at the mirror")
    assert {s["path"] for s in seen(shadow)} == {"/half"}


def test_istio_default_retries_and_a_virtual_service_mirror_through_the_control_plane(mesh):
    cp = ControlPlane(mesh, {"services.yaml": service_entry("ratings") + "---" + service_entry("shadow")})
    cp.start()
    client = cp.sidecar("client", "v1", with_app=False)
    ratings = cp.sidecar("ratings", "v1", with_app=False)
    shadow = cp.sidecar("shadow", "v1", with_app=False)
    mesh.start([sys.executable, SCRIPT, str(ratings.app_port), "ratings"], "scripted-ratings")
    mesh.start([sys.executable, SCRIPT, str(shadow.app_port), "shadow"], "scripted-shadow")
    cp.wait_ready()
    wait_for_port(ratings.app_port)
    wait_for_port(shadow.app_port)

    # No VirtualService: Istio's default policy retries the 503s (2 retries).
    conn = http.client.HTTPConnection("127.0.0.1", client.outbound, timeout=10)
    statuses = []
    for _ in range(40):
        conn.request("GET", "/flaky-default", headers={"Host": "ratings"})
        r = conn.getresponse()
        r.read()
        statuses.append(r.status)
    conn.close()
    assert statuses == [200] * 40
    assert send(client.outbound, "/fail", host="ratings")[0] == 503
    assert len([s for s in seen(ratings.app_port) if s["path"] == "/fail"]) == 3

    # attempts: 0 turns retries off; the mirror copies each request to the shadow service.
    cp.apply({"ratings-vs.yaml": """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - retries: {attempts: 0}
    route: [{destination: {host: ratings}}]
    mirror: {host: shadow}
    mirrorPercentage: {value: 100.0}
"""})
    plain = [send(client.outbound, "/flaky-off", host="ratings")[0] for _ in range(20)]
    assert plain.count(503) == 10 and plain.count(200) == 10, plain
    copies = wait_until(lambda: [s for s in seen(shadow.app_port) if s["path"] == "/flaky-off"] if len(
        [s for s in seen(shadow.app_port) if s["path"] == "/flaky-off"]) == 20 else None, 10, what="20 mirrored copies")
    assert {s["host"] for s in copies} == {"ratings-shadow"}
