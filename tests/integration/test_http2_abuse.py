"""HTTP/2 input that costs the server work and gives the client nothing: floods of
empty, PRIORITY or WINDOW_UPDATE frames end in GOAWAY(ENHANCE_YOUR_CALM) (Envoy's limits
and defaults), and a header block cannot make the decoder expand far more than was sent."""
import struct
import threading
import time

import pytest

import h2frames as h2
from conftest import curl, free_port, simple_config


@pytest.fixture
def h2proxy(mesh):
    up = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up))
    return proxy, port


def open_stream(conn, stream=1, path="/delay/3000", end_stream=False):
    flags = h2.END_HEADERS | (h2.END_STREAM if end_stream else 0)
    conn.send(h2.frame(h2.HEADERS, flags, stream, h2.request_block(path=path, method="POST")))


def assert_served(port):
    r = curl("--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/", timeout=10)
    assert r.stdout == b"200", r.stderr


def test_empty_data_frames_flood_gets_goaway(h2proxy):
    proxy, port = h2proxy
    conn = h2.Connection(port)
    conn.start()
    open_stream(conn)
    # One empty DATA frame is allowed (Envoy's default 1); a run of them is not.
    conn.send(b"".join(h2.frame(h2.DATA, 0, 1) for _ in range(50)))
    assert conn.goaway() == (h2.ENHANCE_YOUR_CALM, b"")
    assert conn.wait_closed()
    assert proxy.stat("meshd_http2_inbound_empty_frames_flood_total") == 1
    assert_served(port)


def test_single_empty_data_frame_is_fine(h2proxy):
    proxy, port = h2proxy
    conn = h2.Connection(port)
    conn.start()
    open_stream(conn, path="/echo")
    conn.send(h2.frame(h2.DATA, 0, 1) + h2.frame(h2.DATA, 0, 1, b"hi") + h2.frame(h2.DATA, h2.END_STREAM, 1))
    got = conn.frames(lambda k, f, s, p: s == 1 and f & h2.END_STREAM and k in (h2.DATA, h2.HEADERS))
    assert any(k == h2.DATA and p == b"hi" for k, _, _, p in got), got
    assert not any(k == h2.GOAWAY for k, *_ in got)


def test_priority_frames_flood_gets_goaway(h2proxy):
    proxy, port = h2proxy
    conn = h2.Connection(port)
    conn.start()
    # 100 per stream opened, plus 100: the 101st with no stream open is one too many.
    priority = struct.pack(">IB", 0, 15)
    conn.send(b"".join(h2.frame(h2.PRIORITY, 0, 2 * i + 1, priority) for i in range(1000)))
    assert conn.goaway() == (h2.ENHANCE_YOUR_CALM, b"")
    assert conn.wait_closed()
    assert proxy.stat("meshd_http2_inbound_priority_frames_flood_total") == 1
    assert_served(port)


def test_window_update_flood_gets_goaway(h2proxy):
    proxy, port = h2proxy
    conn = h2.Connection(port)
    conn.start()
    increment = struct.pack(">I", 1)
    conn.send(b"".join(h2.frame(h2.WINDOW_UPDATE, 0, 0, increment) for _ in range(1000)))
    assert conn.goaway() == (h2.ENHANCE_YOUR_CALM, b"")
    assert conn.wait_closed()
    assert proxy.stat("meshd_http2_inbound_window_update_frames_flood_total") == 1
    assert_served(port)


def amplifying_block(references):
    """A request header block: one 4000-byte value put in the dynamic table, then
    `references` one-byte references to it (index 62, the newest dynamic entry)."""
    return h2.request_block() + h2.literal("x-big", "a" * 4000, indexed=True) + b"\xbe" * references


def test_header_block_expansion_is_bounded(h2proxy):
    """~16 KiB on the wire per frame decode to ~64 MB each: the decoder must give up on
    the block once it passes the header limit, not expand and validate all of it."""
    proxy, port = h2proxy
    conn = h2.Connection(port, timeout=30)
    conn.start()
    streams = [2 * i + 1 for i in range(20)]
    payload = b""
    for stream in streams:
        block = amplifying_block(16_000 - 4100) if stream == 1 else b"\xbe" * 16_000
        payload += h2.frame(h2.HEADERS, h2.END_STREAM, stream, block)
        for i in range(4):
            last = i == 3
            payload += h2.frame(h2.CONTINUATION, h2.END_HEADERS if last else 0, stream, b"\xbe" * 16_000)
    latencies = []

    def other_client():
        start = time.time()
        curl("--http2-prior-knowledge", "-o", "/dev/null", f"http://127.0.0.1:{port}/", timeout=20)
        latencies.append(time.time() - start)

    start = time.time()
    conn.send(payload)
    t = threading.Thread(target=other_client)
    t.start()
    answered = set()
    got = conn.frames(lambda k, f, s, p: (k in (h2.RST_STREAM, h2.HEADERS) and answered.add(s)) or
                      answered >= set(streams) or k == h2.GOAWAY, timeout=20)
    elapsed = time.time() - start
    t.join()
    assert answered >= set(streams), got[:5]
    assert elapsed < 2, elapsed
    assert latencies and latencies[0] < 2, latencies
    # Each stream is refused (RST_STREAM) without its block being expanded.
    assert all(k == h2.RST_STREAM for k, _, s, _ in got if s in streams), [(k, s) for k, _, s, _ in got]
    assert_served(port)
