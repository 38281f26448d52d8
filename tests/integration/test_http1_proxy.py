"""HTTP/1.1 through `meshd proxy`: routing, standard headers, upstream failures, access log, admin."""
import json
import re

from conftest import curl, free_port, simple_config


def test_proxies_and_sets_standard_headers(mesh):
    up = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up, filters=[{"name": "meshd.header_mutation", "config": {
        "request": {"set": {"x-added": "yes"}}, "response": {"set": {"x-resp": "1"}, "remove": ["x-service"]}}}]))
    r = curl("-i", "-H", "Connection: keep-alive, x-hop", "-H", "x-hop: secret", "-H", "Keep-Alive: timeout=5",
             f"http://127.0.0.1:{port}/hello?q=1")
    head, body = r.stdout.decode().split("\r\n\r\n", 1)
    assert head.startswith("HTTP/1.1 200")
    assert "x-resp: 1" in head
    assert "x-service" not in head
    seen = json.loads(body)
    assert seen["path"] == "/hello?q=1"
    h = seen["headers"]
    assert h["x-added"] == "yes"
    assert h["x-forwarded-for"] == "127.0.0.1"
    assert h["x-forwarded-proto"] == "http"
    assert re.fullmatch(r"[0-9a-f-]{36}", h["x-request-id"])
    assert "x-hop" not in h and "keep-alive" not in h and "via" not in h
    # An x-request-id from the client is kept; XFF is appended to.
    seen = json.loads(curl("-H", "x-request-id: abc", "-H", "X-Forwarded-For: 10.1.2.3",
                           f"http://127.0.0.1:{port}/").stdout)
    assert seen["headers"]["x-request-id"] == "abc"
    assert seen["headers"]["x-forwarded-for"] == "10.1.2.3,127.0.0.1"


def test_routing_by_authority_path_and_headers(mesh):
    a, b = mesh.upstream("a"), mesh.upstream("b")
    port = free_port()
    cfg = {
        "listeners": [{"name": "main", "address": "127.0.0.1", "port": port, "routeConfig": "rc"}],
        "routeConfigs": [{"name": "rc", "virtualHosts": [
            {"name": "api", "domains": ["api.example.com"], "routes": [
                {"name": "canary", "match": {"prefix": "/", "headers": [{"name": "x-canary", "exact": "1"}]},
                 "route": {"cluster": "b"}},
                {"name": "exact", "match": {"path": "/exact"}, "route": {"cluster": "b"}},
                {"name": "regex", "match": {"safeRegex": "/items/[0-9]+"}, "route": {"cluster": "b"}},
                {"name": "rewrite", "match": {"prefix": "/old/"}, "route": {"cluster": "a", "prefixRewrite": "/new/"}},
                {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "a"}}]},
            {"name": "wild", "domains": ["*.wild.test"], "routes": [
                {"name": "direct", "match": {"prefix": "/"}, "directResponse": {"status": 418, "body": "teapot"}}]},
        ]}],
        "clusters": [{"name": "a", "endpoints": [{"address": "127.0.0.1", "port": a}]},
                     {"name": "b", "endpoints": [{"address": "127.0.0.1", "port": b}]}],
    }
    mesh.proxy(cfg)

    def service(path, *hdrs, host="api.example.com"):
        r = curl("-H", f"Host: {host}", *sum([["-H", h] for h in hdrs], []), f"http://127.0.0.1:{port}{path}")
        return json.loads(r.stdout)

    assert service("/x")["service"] == "a"
    assert service("/x", "x-canary: 1")["service"] == "b"
    assert service("/exact")["service"] == "b"
    assert service("/exact/more")["service"] == "a"
    assert service("/items/42")["service"] == "b"
    assert service("/items/4x")["service"] == "a"
    assert service("/old/thing")["path"] == "/new/thing"
    r = curl("-i", "-H", "Host: x.wild.test", f"http://127.0.0.1:{port}/")
    assert r.stdout.startswith(b"HTTP/1.1 418") and r.stdout.endswith(b"teapot")
    assert b"server: meshd" in r.stdout.lower()
    r = curl("-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: nowhere.test", f"http://127.0.0.1:{port}/")
    assert r.stdout == b"404"


def test_upstream_failures_map_to_status_and_flags(mesh):
    up = mesh.upstream("app")
    dead = free_port()
    port = free_port()
    cfg = simple_config(port, up, routes=[
        {"name": "dead", "match": {"prefix": "/dead"}, "route": {"cluster": "dead"}},
        {"name": "slow", "match": {"prefix": "/delay"}, "route": {"cluster": "app", "timeoutMs": 300}},
        {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "app"}}],
        clusters=[{"name": "app", "endpoints": [{"address": "127.0.0.1", "port": up}]},
                  {"name": "dead", "connectTimeoutMs": 1000, "endpoints": [{"address": "127.0.0.1", "port": dead}]}])
    proxy = mesh.proxy(cfg)

    def code(path):
        return curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}{path}").stdout.decode()

    assert code("/dead") == "503"
    assert code("/reset") == "502"
    assert code("/delay/2000") == "504"
    assert code("/status/201") == "201"
    lines = proxy.access_log(wait_lines=4)
    flags = {re.search(r'"GET (\S+) ', l).group(1): l.split('" ', 1)[1].split()[1] for l in lines}
    assert flags["/dead"] == "UF"
    assert flags["/reset"] == "UC"
    assert flags["/delay/2000"] == "UT"
    assert flags["/status/201"] == "-"
    # Istio's default format (test_access_log.py checks every field).
    line = [l for l in lines if "/status/201" in l][0]
    assert re.fullmatch(r'\[\S+\] "GET /status/201 HTTP/1.1" 201 - via_upstream - "-" 0 0 \d+ \d+ "127.0.0.1" '
                        r'"curl/\S+" "[0-9a-f-]+" "127.0.0.1:\d+" "127.0.0.1:\d+" app - 127.0.0.1:\d+ '
                        r'127.0.0.1:\d+ - default', line), line
    assert proxy.stat('meshd_upstream_rq_completed_total{cluster="app",response_code="201"}') == 1


def test_no_route_is_404_with_NR(mesh):
    up = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up, routes=[
        {"name": "only", "match": {"prefix": "/only"}, "route": {"cluster": "app"}}]))
    r = curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/other")
    assert r.stdout == b"404"
    assert " 404 NR " in proxy.access_log(wait_lines=1)[0]


def test_keepalive_connections_are_reused_upstream(mesh):
    up = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up), concurrency=1)
    before = proxy.stat('meshd_downstream_cx_total{listener="main"}')
    urls = [f"http://127.0.0.1:{port}/n{i}" for i in range(20)]
    r = curl(*sum([["-o", "/dev/null"] + [u] for u in urls], []), "-w", "%{http_code}\n")
    assert r.stdout.decode().split() == ["200"] * 20
    assert proxy.stat("meshd_upstream_cx_active") == 1
    assert proxy.stat('meshd_downstream_cx_total{listener="main"}') - before == 1


def test_admin_endpoints(mesh):
    up = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up))
    assert proxy.admin("/ready") == (200, "LIVE\n")
    dump = proxy.config_dump()
    assert dump["version"] == 1
    assert dump["config"]["listeners"][0]["port"] == port
    curl(f"http://127.0.0.1:{port}/")
    stats = proxy.admin("/stats/prometheus")[1]
    assert 'meshd_downstream_rq_total{listener="main"} 1' in stats
    assert 'meshd_downstream_rq_xx_total{listener="main",response_code_class="2xx"} 1' in stats
    assert "# TYPE meshd_downstream_rq_total counter" in stats
    assert proxy.admin("/nope")[0] == 404


def test_large_responses_back_to_back_on_a_pooled_connection(mesh):
    """A response that was paused for backpressure must not leave its pooled connection paused."""
    up = mesh.upstream("app")
    port = free_port()
    mesh.proxy(simple_config(port, up), concurrency=1)
    for i in range(10):
        size = 3_000_000 if i % 2 == 0 else 100
        r = curl("-o", "/dev/null", "-w", "%{size_download} %{http_code}", f"http://127.0.0.1:{port}/bytes/{size}", timeout=20)
        assert r.stdout.decode() == f"{size} 200", (i, r.stdout, r.stderr)


def test_local_reply_keeps_the_connection_usable(mesh):
    """A reply made before the request's end was parsed (no route, direct response) must not close the connection."""
    import http.client
    up = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up, routes=[
        {"name": "direct", "match": {"path": "/direct"}, "directResponse": {"status": 200, "body": "hi"}},
        {"name": "app", "match": {"prefix": "/app"}, "route": {"cluster": "app"}}]))
    before = proxy.stat('meshd_downstream_cx_total{listener="main"}')
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for path, status in [("/nope", 404), ("/direct", 200), ("/app", 200), ("/nope", 404), ("/app", 200)]:
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        assert r.status == status, path
        assert r.getheader("connection") != "close", path
    conn.close()
    assert proxy.stat('meshd_downstream_cx_total{listener="main"}') - before == 1
    # A POST answered before its body arrived says it will close.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("POST", "/nope")
    conn.putheader("content-length", "100000")
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 404 and r.getheader("connection") == "close"
    conn.close()
