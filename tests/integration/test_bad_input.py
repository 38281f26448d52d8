"""Malformed and hostile HTTP/1.1 input: the right status, nothing forwarded, the proxy keeps serving."""
import socket
import time

import pytest

from conftest import curl, free_port, raw_request, simple_config

SMUGGLING = {
    "cl_and_te": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two_content_lengths": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    "obs_fold": b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
    "bad_chunk_size": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "bad_request_line": b"GET /\x01bad HTTP/1.1\r\nHost: x\r\n\r\n",
    "garbage": b"\x16\x03\x01\x02\x00garbage\r\n\r\n",
    "bad_header_name": b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n",
}


@pytest.fixture
def proxied(mesh):
    up = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up, listener_extra={"requestHeadersTimeoutMs": 700}))
    return proxy, port


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_malformed_requests_get_400_and_are_not_forwarded(proxied, name):
    proxy, port = proxied
    answer = raw_request(port, SMUGGLING[name])
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"connection: close" in answer.lower()
    # Nothing reached the upstream, and the proxy still serves.
    assert proxy.stat("meshd_upstream_rq_total") == 0
    assert curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/").stdout == b"200"


def test_header_block_over_60k_is_431(proxied):
    proxy, port = proxied
    big = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-Big-%d: %s\r\n" % (i, b"a" * 1000) for i in range(70)) + b"\r\n"
    answer = raw_request(port, big)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert proxy.stat("meshd_upstream_rq_total") == 0
    # Just under the limit passes.
    ok = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + b"".join(
        b"X-Big-%d: %s\r\n" % (i, b"a" * 1000) for i in range(50)) + b"\r\n"
    assert raw_request(port, ok).startswith(b"HTTP/1.1 200")


def test_slow_client_headers_time_out_with_408(proxied):
    proxy, port = proxied
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        start = time.time()
        answer = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            answer += b
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert time.time() - start < 4.5  # closed by the proxy, not by our socket timeout


def test_missing_tls_key_is_a_clear_startup_error(mesh, tmp_path):
    import subprocess
    from conftest import MESHD
    import yaml
    port = free_port()
    cfg = simple_config(port, 1, listener_extra={"tls": {"certificateChain": str(tmp_path / "cert.pem"),
                                                          "privateKey": str(tmp_path / "missing-key.pem")}})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = subprocess.run([MESHD, "proxy", "--config", str(path), "--admin-port=-1"], capture_output=True, timeout=30)
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "cert.pem" in err or "missing-key.pem" in err, err


def test_invalid_bootstrap_is_a_clear_startup_error(mesh, tmp_path):
    import subprocess
    from conftest import MESHD
    path = tmp_path / "c.yaml"
    path.write_text("listeners:\n  - name: a\n    address: 127.0.0.1\n    routeConfig: r\n    port: notanumber\n")
    r = subprocess.run([MESHD, "proxy", "--config", str(path), "--admin-port=-1"], capture_output=True, timeout=30)
    assert r.returncode != 0
    assert "listeners[0].port" in r.stderr.decode(), r.stderr.decode()


def test_idle_keepalive_connection_is_closed(mesh):
    up = mesh.upstream("app")
    port = free_port()
    mesh.proxy(simple_config(port, up, listener_extra={"idleTimeoutMs": 500}))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        start = time.time()
        rest = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            rest += b
        assert 0.3 < time.time() - start < 4.5


def test_client_that_goes_away_is_logged_DC(mesh):
    up = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /delay/3000 HTTP/1.1\r\nHost: x\r\n\r\n")
        proxy.wait_active_requests(1)
    line = proxy.access_log(wait_lines=1)[0]
    assert '"GET /delay/3000 HTTP/1.1" 0 DC ' in line, line


@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n",
], ids=["two_hosts", "no_host", "two_hosts_in_one_line"])
def test_http11_request_without_exactly_one_host_is_400(proxied, request_bytes):
    """RFC 9112 §3.2: answered 400, never forwarded."""
    proxy, port = proxied
    answer = raw_request(port, request_bytes)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert proxy.stat("meshd_upstream_rq_total") == 0
    # HTTP/1.0 may omit Host.
    assert raw_request(port, b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200")


def test_connect_gets_a_complete_404_and_the_connection_closes(proxied):
    proxy, port = proxied
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        start = time.time()
        answer = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            answer += b
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404"), answer
    assert b"connection: close" in head.lower()
    assert b"content-length: %d" % len(body) in head.lower(), answer
    assert time.time() - start < 2  # closed by the proxy at once, not at the idle timeout
    assert proxy.stat("meshd_upstream_rq_total") == 0


def test_http2_connect_is_404_no_route_even_where_a_regex_matches_anything(mesh):
    """No route tunnels CONNECT (Envoy needs a connect_matcher for that)."""
    import h2frames as h2
    up = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up, routes=[
        {"name": "any", "match": {"safeRegex": ".*"}, "route": {"cluster": "app"}}]))
    conn = h2.Connection(port)
    conn.start()
    block = h2.hpack_int(2, 4, 0) + h2.hpack_string("CONNECT") + h2.hpack_int(1, 4, 0) + h2.hpack_string("example.com:443")
    conn.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, block))
    got = conn.frames(lambda k, f, s, p: s == 1 and k in (h2.HEADERS, h2.RST_STREAM))
    # :status 404 from the static table (index 13) or as a literal.
    heads = [p for k, _, s, p in got if k == h2.HEADERS and s == 1]
    assert heads and (heads[0][:1] == b"\x8d" or b"404" in heads[0]), got
    assert proxy.stat("meshd_upstream_rq_total") == 0
    assert " NR " in proxy.access_log(wait_lines=1)[0]
