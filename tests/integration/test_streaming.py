"""Bodies stream both ways with backpressure: 1 GiB each way with bounded proxy memory."""
import os
import subprocess
import time

from conftest import free_port, simple_config

GIB = 1 << 30


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run_sampling(cmd, pid, timeout):
    """Runs cmd while sampling the proxy's RSS; returns (completed process, peak RSS KiB)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        peak = max(peak, rss_kib(pid))
        time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
    out, err = proc.communicate()
    return proc.returncode, out, err, peak


def test_one_gib_download_and_upload_with_bounded_memory(mesh, tmp_path):
    up = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up, routes=[
        {"name": "big", "match": {"prefix": "/"}, "route": {"cluster": "app", "timeoutMs": 0}}]), concurrency=1)
    pid = proxy.process.proc.pid
    # Warm up so the idle figure includes the loaded code and pools.
    subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/bytes/1000000"], check=True)
    idle = rss_kib(pid)

    rc, out, err, peak_down = run_sampling(
        ["curl", "-sS", "--max-time", "240", "-o", "/dev/null", "-w", "%{size_download} %{http_code}",
         f"http://127.0.0.1:{port}/bytes/{GIB}"], pid, 250)
    assert rc == 0, err
    assert out.decode() == f"{GIB} 200"

    # Upload: a generator streams 1 GiB of zeros without a file; the upstream counts it.
    rc, out, err, peak_up = run_sampling(
        ["bash", "-c", f"head -c {GIB} /dev/zero | curl -sS --max-time 240 -X POST -T - "
                       f"http://127.0.0.1:{port}/sink"], pid, 250)
    assert rc == 0, err
    assert out.decode().strip() == str(GIB)

    for peak in (peak_down, peak_up):
        assert peak - idle < 64 * 1024, f"RSS grew {(peak - idle) // 1024} MiB above idle ({idle // 1024} MiB)"
