"""Connections cannot hold the proxy's resources for free: every stage before a request
is complete is timed (accept, TLS handshake, protocol choice, HTTP/2 header blocks, each
request's headers), idle HTTP/2 connections close, and a full listener (or process)
refuses new connections with an answer while the admin listener stays reachable."""
import socket
import ssl
import time
import urllib.request

import pytest

import h2frames as h2
from certs import make_certs
from conftest import curl, free_port, simple_config


def wait_until(condition, timeout=5.0):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "condition not reached"
        time.sleep(0.05)


def closed_after(sock, timeout=5.0):
    """Seconds until the server closed `sock` (None if it did not within `timeout`),
    and the bytes it sent before."""
    start = time.time()
    data = b""
    sock.settimeout(timeout)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return time.time() - start, data
            data += chunk
    except socket.timeout:
        return None, data
    except ConnectionResetError:
        return time.time() - start, data


@pytest.fixture
def short_timeouts(mesh):
    up = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up, listener_extra={"requestHeadersTimeoutMs": 600, "idleTimeoutMs": 1500}))
    return proxy, port


def test_silent_connection_is_closed_at_the_header_timeout(short_timeouts):
    _, port = short_timeouts
    with socket.create_connection(("127.0.0.1", port)) as s:
        after, data = closed_after(s)
    assert after is not None and 0.4 < after < 3, after
    assert data == b""


def test_partial_http2_preface_is_closed_at_the_header_timeout(short_timeouts):
    _, port = short_timeouts
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(h2.PREFACE[:10])
        after, _ = closed_after(s)
    assert after is not None and 0.4 < after < 3, after


def test_slow_first_request_is_timed_from_the_accept(short_timeouts):
    """Trickling a request line never resets the clock: 408 at the header timeout."""
    _, port = short_timeouts
    with socket.create_connection(("127.0.0.1", port)) as s:
        start = time.time()
        for b in b"GET / HT":
            s.sendall(bytes([b]))
            time.sleep(0.1)
        after, data = closed_after(s)
    assert data.startswith(b"HTTP/1.1 408"), data
    assert time.time() - start < 3


def test_slow_second_request_on_a_keepalive_connection_gets_408(short_timeouts):
    _, port = short_timeouts
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        after, data = closed_after(s)
    # The header timeout (600 ms), not the idle timeout (1500 ms).
    assert data.startswith(b"HTTP/1.1 408"), data
    assert after is not None and after < 1.3, after


def test_keepalive_connection_idle_longer_than_the_header_timeout_still_serves(short_timeouts):
    _, port = short_timeouts
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for _ in range(2):
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            time.sleep(0.9)  # over the header timeout, under the idle timeout


def test_http2_connection_without_streams_gets_goaway_at_the_idle_timeout(short_timeouts):
    _, port = short_timeouts
    conn = h2.Connection(port)
    conn.start()
    start = time.time()
    assert conn.goaway(timeout=5) == (0, b"")
    assert conn.wait_closed()
    assert 1.0 < time.time() - start < 4


def test_incomplete_http2_header_block_is_closed_at_the_header_timeout(short_timeouts):
    _, port = short_timeouts
    conn = h2.Connection(port)
    conn.start()
    # HEADERS without END_HEADERS, and the CONTINUATION never comes.
    conn.send(h2.frame(h2.HEADERS, h2.END_STREAM, 1, h2.request_block()))
    start = time.time()
    assert conn.wait_closed(timeout=5)
    assert 0.4 < time.time() - start < 1.3


def test_stalled_tls_handshake_is_closed_at_the_header_timeout(mesh, tmp_path):
    certs = make_certs(str(tmp_path))
    up = mesh.upstream("app")
    port = free_port()
    mesh.proxy(simple_config(port, up, listener_extra={
        "requestHeadersTimeoutMs": 600, "tls": {"certificateChain": certs["cert"], "privateKey": certs["key"]}}))
    # A real ClientHello, then silence.
    context = ssl.create_default_context(cafile=certs["ca"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(outgoing.read())
        after, data = closed_after(s)
    assert data[:1] == b"\x16", data[:10]  # the server's handshake records came
    assert after is not None and after < 3, after


def test_listener_connection_limit_answers_503_and_admin_stays_reachable(mesh):
    up = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up, listener_extra={"maxConnections": 3, "requestHeadersTimeoutMs": 30000}))
    wait_until(lambda: proxy.stat("meshd_downstream_cx_active") == 0)  # the harness's port probe is gone
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        wait_until(lambda: proxy.stat("meshd_downstream_cx_active") == 3)
        r = curl("-s", "-i", f"http://127.0.0.1:{port}/")
        assert r.stdout.startswith(b"HTTP/1.1 503"), r.stdout
        assert r.stdout.endswith(b"connection limit reached\n"), r.stdout
        assert b"connection: close" in r.stdout.lower()
        assert proxy.admin("/ready") == (200, "LIVE\n")
        assert proxy.stat("meshd_downstream_cx_overflow_total") == 1
    finally:
        for s in held:
            s.close()
    wait_until(lambda: proxy.stat("meshd_downstream_cx_active") == 0)
    assert curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/").stdout == b"200"


def test_silent_connections_past_the_fd_limit_leave_admin_reachable(mesh):
    """With 600 descriptors, 650 silent connections used to lock out every client, admin
    included. Now the downstream budget ((600 - 128) / 2) refuses the surplus at accept,
    admin answers throughout, and service resumes once the header timeout closes them."""
    up = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up, listener_extra={"requestHeadersTimeoutMs": 4000}),
                       launcher=("prlimit", "--nofile=600:600"))
    held = []
    try:
        for _ in range(650):
            try:
                held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        wait_until(lambda: proxy.stat("meshd_downstream_cx_overflow_total") > 0)
        with urllib.request.urlopen(f"http://127.0.0.1:{proxy.admin_port}/ready", timeout=2) as r:
            assert r.status == 200
        assert proxy.stat("meshd_downstream_cx_active") <= 236
        assert proxy.stat("meshd_downstream_cx_overflow_total") > 0
        # Once the header timeout has closed the silent ones, clients are served again.
        deadline = time.time() + 15
        code = b""
        while time.time() < deadline and code != b"200":
            code = curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/", timeout=3).stdout
            time.sleep(0.2)
        assert code == b"200"
    finally:
        for s in held:
            s.close()
