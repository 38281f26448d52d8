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


def test_sighup_reloads_the_bootstrap_and_sigusr1_does_not_kill(mesh):
    up = mesh.upstream("app")
    port = free_port()
    # File watching off: only the signal can make the change visible.
    proxy = mesh.proxy(simple_config(port, up), extra_args=["--watch-interval-ms", "0"])
    config = simple_config(port, up, routes=[
        {"name": "d", "match": {"prefix": "/"}, "directResponse": {"status": 202, "body": "reloaded"}}])
    proxy.write_config(config)
    proxy.process.proc.send_signal(signal.SIGHUP)
    proxy.wait_version(2)
    assert curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/").stdout == b"202"
    proxy.process.proc.send_signal(signal.SIGUSR1)
    deadline = time.time() + 5
    while "SIGUSR1" not in proxy.process.stderr() and time.time() < deadline:
        time.sleep(0.05)
    assert "SIGUSR1" in proxy.process.stderr()
    assert proxy.process.proc.poll() is None
    assert curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/").stdout == b"202"
    assert proxy.process.stop(signal.SIGTERM) == 0


def test_control_plane_sighup_rereads_the_directory_and_sidecar_survives_hup_and_usr1(mesh):
    from mesh_harness import ControlPlane, wait_until
    cp = ControlPlane(mesh, {"services.yaml": ""}).start()
    sidecar = cp.sidecar("app", with_app=False)
    cp.wait_synced()
    version = cp.config_status()["configVersion"]
    cp.process.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: cp.config_status()["configVersion"] > version, what="config re-read")
    for sig in (signal.SIGHUP, signal.SIGUSR1):
        sidecar.sidecar.proc.send_signal(sig)
    wait_until(lambda: "SIGUSR1" in sidecar.sidecar.stderr() and "SIGHUP" in sidecar.sidecar.stderr(),
               what="signals logged")
    assert cp.process.proc.poll() is None and sidecar.running()
    assert sidecar.sidecar.stop(signal.SIGTERM) == 0
