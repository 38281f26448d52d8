"""Memory stays flat under connection churn: rounds of 3000 HTTP/1 connections, 10000
keep-alive requests, 3000 upstream connections and 3000 HTTP/2 connections, with the
proxy's resident set (VmRSS) measured after a warm-up round and after each round.

A retained object per connection (a handler and its ChannelHandlerContext keeping each
other alive, ~0.9 KB per downstream and ~0.45 KB per upstream connection) or per request
(a cancelled timer's slot, ~25 B) adds up to megabytes over these rounds; allocator noise
stays well under the band."""
import os
import socket
import subprocess
import sys

import pytest

import h2frames as h2
from conftest import free_port, simple_config, wait_for_port

HERE = os.path.dirname(os.path.abspath(__file__))
ROUNDS = 3
# Growth allowed after warm-up; measured noise is under 60 KB.
BAND_KB = 256


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def h2load(*args, expect):
    r = subprocess.run(["h2load", *args], capture_output=True, timeout=120)
    out = r.stdout.decode()
    assert f"{expect} succeeded, 0 failed, 0 errored" in out, out[-800:]


@pytest.fixture
def soak_proxy(mesh):
    """A proxy answering / itself and sending /churn to an upstream that closes after each answer."""
    closing = free_port()
    mesh.start([sys.executable, os.path.join(HERE, "closing_upstream.py"), str(closing)], "closing-upstream")
    wait_for_port(closing)
    port = free_port()
    config = simple_config(port, closing, routes=[
        {"name": "churn", "match": {"prefix": "/churn"}, "route": {"cluster": "app"}},
        {"name": "direct", "match": {"prefix": "/"}, "directResponse": {"status": 200, "body": "hi"}}])
    return mesh.proxy(config), port


def http1_connections(port, count):
    """`count` connections one after another, one keep-alive request each, closed by us."""
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(request)
            answer = b""
            while not answer.endswith(b"hi"):
                chunk = s.recv(4096)
                assert chunk, answer
                answer += chunk


def http2_connections(port, count):
    """`count` h2c connections one after another, one request each."""
    request = h2.PREFACE + h2.settings() + h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, h2.request_block())
    for _ in range(count):
        conn = h2.Connection(port)
        conn.send(request)
        got = conn.frames(lambda kind, flags, stream, _: stream == 1 and flags & h2.END_STREAM)
        assert got and got[-1][2] == 1, got
        conn.close()


# One client at a time where connections churn, so every round peaks alike and only what
# is retained shows (many at once leave the allocator noise of a few hundred KB).
ROUND = {
    "http1_connections": lambda port: http1_connections(port, 3000),
    # 10000 requests over 4 keep-alive connections (answered by the proxy itself).
    "http1_keepalive_requests": lambda port: h2load("--h1", "-n", "10000", "-c", "4", f"http://127.0.0.1:{port}/",
                                                    expect=10000),
    # 3000 requests to an upstream that closes after each answer: 3000 upstream connections.
    "upstream_connections": lambda port: h2load("--h1", "-n", "3000", "-c", "8", f"http://127.0.0.1:{port}/churn",
                                                expect=3000),
    "http2_connections": lambda port: http2_connections(port, 3000),
}


@pytest.mark.parametrize("kind", list(ROUND))
def test_memory_is_flat_across_rounds(soak_proxy, kind):
    proxy, port = soak_proxy
    pid = proxy.process.proc.pid
    ROUND[kind](port)  # warm-up: pools, caches and the allocator reach their working size
    base = rss_kb(pid)
    after = []
    for _ in range(ROUNDS):
        ROUND[kind](port)
        after.append(rss_kb(pid))
    print(f"{kind}: VmRSS {base} KB after warm-up, then {after} KB")
    assert max(after) - base <= BAND_KB, f"{kind}: VmRSS {base} KB after warm-up, then {after} KB"
