"""Route regexes run through RE2: a pattern that makes a backtracking engine take exponential
time answers at once, and does not stall the event loop other connections share."""
import socket
import threading
import time

from conftest import curl, free_port, simple_config

A_LOT = 100_000


def raw_get(port, path, timeout):
    """GET `path` on a fresh connection; returns (status line, seconds taken). A read that
    times out returns ("timeout", seconds)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            return "timeout", time.monotonic() - start
    return data.split(b"\r\n", 1)[0].decode(errors="replace"), time.monotonic() - start


def test_nested_quantifier_regex_answers_promptly_and_does_not_stall_the_loop(mesh):
    up = mesh.upstream("app")
    port = free_port()
    cfg = simple_config(port, up, listener_extra={"maxRequestHeadersKb": 256}, routes=[
        # `uri: {regex: "/(a+)+b"}`: exponential for a backtracking engine on /aaa…ac.
        {"name": "evil", "match": {"safeRegex": "/(a+)+b"}, "directResponse": {"status": 200, "body": "evil"}},
        {"name": "ok", "match": {"prefix": "/ok"}, "route": {"cluster": "app"}},
    ])
    # One event loop: both connections below are served by the same thread.
    proxy = mesh.proxy(cfg, concurrency=1)
    r = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/aaab")
    assert r.stdout == b"200"

    evil = {}

    def send_evil():
        evil["status"], evil["seconds"] = raw_get(port, "/" + "a" * A_LOT + "c", timeout=20)

    t = threading.Thread(target=send_evil)
    t.start()
    time.sleep(0.3)  # the long request is on the loop (or already answered)
    status, seconds = raw_get(port, "/ok", timeout=10)
    # Liveness only, not a benchmark: a backtracking engine would hold the loop for ages.
    assert status == "HTTP/1.1 200 OK", status
    assert seconds < 2, f"/ok on another connection took {seconds:.1f}s"
    t.join(timeout=30)
    assert not t.is_alive()
    # No route matches the long path (full match, and it ends in "c"): 404 with NR.
    assert evil["status"].startswith("HTTP/1.1 404"), evil
    assert evil["seconds"] < 5, evil
    assert any(" 404 NR " in line for line in proxy.access_log(wait_lines=3))
