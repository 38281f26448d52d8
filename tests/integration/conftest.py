"""Test harness: starts real meshd processes on free loopback ports and stops them after each test."""
import json
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MESHD = os.environ.get("MESHD_BIN", os.path.join(ROOT, ".build", "debug", "meshd"))


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = map(int, f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


_EPHEMERAL = _ephemeral_range()
_PORTS = range(20000, _EPHEMERAL[0]) if _EPHEMERAL[0] > 21000 else range(_EPHEMERAL[1] + 1, 65535)
_handed_out = set()
_random = random.Random()


def free_port():
    """A port nothing is bound to, for a server the test starts. Not one from bind(0): that is
    in the kernel's ephemeral range, where any process's next outgoing connection may take it
    as its local port before our server binds it ("Address already in use"). A port below
    that range is never given to an outgoing connection; none is handed out twice."""
    for _ in range(1000):
        port = _random.choice(_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port found")


def wait_for_port(port, timeout=15.0, host="127.0.0.1"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


class Process:
    def __init__(self, args, workdir, name):
        self.name = name
        self.stdout_path = os.path.join(workdir, f"{name}.out")
        self.stderr_path = os.path.join(workdir, f"{name}.err")
        self.proc = subprocess.Popen(args, stdout=open(self.stdout_path, "wb"), stderr=open(self.stderr_path, "wb"))

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def stdout(self):
        with open(self.stdout_path, errors="replace") as f:
            return f.read()

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()


class Proxy:
    def __init__(self, mesh, config, concurrency, extra_args, launcher=()):
        self.mesh = mesh
        self.config_path = os.path.join(mesh.workdir, f"proxy-{len(mesh.processes)}.yaml")
        self.admin_port = free_port()
        self.write_config(config)
        args = [*launcher, MESHD, "proxy", "--config", self.config_path, "--admin-port", str(self.admin_port),
                "--concurrency", str(concurrency), "--watch-interval-ms", "100", "--drain-timeout", "5"] + extra_args
        self.process = mesh.start(args, "proxy")
        wait_for_port(self.admin_port)
        for listener in config.get("listeners", []):
            wait_for_port(listener["port"])

    def write_config(self, config):
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            yaml.safe_dump(config, f)
        os.replace(tmp, self.config_path)

    def admin(self, path, method="GET", body=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", method=method, data=body)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def config_dump(self):
        return json.loads(self.admin("/config_dump")[1])

    def wait_version(self, version, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.config_dump()["version"] >= version:
                return
            time.sleep(0.05)
        raise TimeoutError(f"config version {version} not reached: {self.config_dump()['version']}")

    def stat(self, name):
        total = 0
        for line in self.admin("/stats/prometheus")[1].splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += int(line.rsplit(" ", 1)[1])
        return total

    def wait_active_requests(self, n=1, timeout=10):
        """Waits until `n` requests are in flight in the proxy (it read their heads)."""
        deadline = time.time() + timeout
        while self.stat("meshd_downstream_rq_active") < n:
            if time.time() > deadline:
                raise TimeoutError(f"{n} requests not in flight after {timeout}s")
            time.sleep(0.02)

    def access_log(self, wait_lines=0, timeout=5):
        deadline = time.time() + timeout
        while True:
            lines = [l for l in self.process.stdout().splitlines() if l.startswith("[")]
            if len(lines) >= wait_lines or time.time() > deadline:
                return lines
            time.sleep(0.05)


class Mesh:
    def __init__(self, workdir):
        self.workdir = workdir
        self.processes = []

    def start(self, args, name):
        p = Process(args, self.workdir, f"{name}-{len(self.processes)}")
        self.processes.append(p)
        return p

    def upstream(self, name="app"):
        port = free_port()
        self.start([MESHD, "demo-app", "--port", str(port), "--name", name], f"upstream-{name}")
        wait_for_port(port)
        return port

    def proxy(self, config, concurrency=2, extra_args=(), launcher=()):
        """`launcher`: a command prefix, e.g. ("prlimit", "--nofile=600") (it must exec meshd)."""
        return Proxy(self, config, concurrency, list(extra_args), launcher)

    def stop_all(self):
        for p in reversed(self.processes):
            p.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.call_failed = report.failed


@pytest.fixture
def mesh(request):
    with tempfile.TemporaryDirectory(prefix="meshd-test-") as d:
        m = Mesh(d)
        try:
            yield m
        finally:
            m.stop_all()
            if getattr(request.node, "call_failed", False):
                # What every process said, for a failure that does not reproduce.
                for p in m.processes:
                    tail = "\n    ".join(p.stderr().splitlines()[-12:])
                    print(f"--- {p.name} (exit {p.proc.returncode}) stderr:\n    {tail}")


def simple_config(listener_port, upstream_port, routes=None, filters=None, listener_extra=None, clusters=None):
    """One listener, one route table, one cluster `app` at upstream_port."""
    listener = {"name": "main", "address": "127.0.0.1", "port": listener_port, "routeConfig": "main"}
    if filters:
        listener["httpFilters"] = filters
    listener.update(listener_extra or {})
    return {
        "listeners": [listener],
        "routeConfigs": [{"name": "main", "virtualHosts": [{"name": "all", "domains": ["*"], "routes": routes or [
            {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]}],
        "clusters": clusters or [{"name": "app", "endpoints": [{"address": "127.0.0.1", "port": upstream_port}]}],
    }


def raw_request(port, data, timeout=5.0):
    """Sends raw bytes, returns everything the server answers until it closes (or times out)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        except socket.timeout:
            pass
        return b"".join(chunks)


def curl(*args, timeout=30):
    r = subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args], capture_output=True, timeout=timeout + 5)
    return r


def bounded_load(port, stop, results, deadline, classify=lambda r: r.status, max_requests=20000):
    """One keep-alive client: GET / (every tenth a short /delay/2) until `stop`, the deadline
    or max_requests; appends classify(response), or the exception text on a failure."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    n = 0
    while not stop.is_set() and time.time() < deadline and n < max_requests:
        n += 1
        try:
            conn.request("GET", "/delay/2" if n % 10 == 0 else "/")
            r = conn.getresponse()
            r.read()
            results.append(classify(r))
        except Exception as e:  # counted as a failure
            results.append(repr(e))
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
