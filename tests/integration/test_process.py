"""Process behaviour: SIGTERM drains in-flight requests and exits 0."""
import signal
import threading
import time

from conftest import curl, free_port, simple_config


def test_sigterm_lets_inflight_requests_finish(mesh):
    up = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up))
    results = {}

    def slow():
        results["slow"] = curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/delay/1500")

    t = threading.Thread(target=slow)
    t.start()
    proxy.wait_active_requests(1)
    start = time.time()
    code = proxy.process.stop(signal.SIGTERM, timeout=15)
    t.join()
    assert code == 0
    assert results["slow"].stdout == b"200"
    assert time.time() - start < 10
    # No longer accepting.
    assert curl(f"http://127.0.0.1:{port}/", timeout=2).returncode != 0
    assert '"GET /delay/1500 HTTP/1.1" 200' in proxy.process.stdout()


def test_drain_timeout_bounds_shutdown(mesh):
    up = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up, routes=[
        {"name": "d", "match": {"prefix": "/"}, "route": {"cluster": "app", "timeoutMs": 0}}]))
    t = threading.Thread(target=lambda: curl(f"http://127.0.0.1:{port}/delay/30000", timeout=40))
    t.start()
    proxy.wait_active_requests(1)
    start = time.time()
    assert proxy.process.stop(signal.SIGTERM, timeout=20) == 0
    assert time.time() - start < 9  # --drain-timeout 5
    t.join()
