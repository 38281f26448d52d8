"""Harness for control plane + sidecar tests: a config directory, `meshd control-plane` on free
ports, demo-apps each behind a `meshd sidecar`, optionally a `meshd gateway`, and bounded HTTP
traffic. Every process is started through the `mesh` fixture (conftest.Mesh), which stops them.
"""
import collections
import http.client
import http.server
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

from conftest import MESHD, free_port, wait_for_port


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Polls until predicate() is truthy and returns its value; bounded by `timeout`."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise TimeoutError(f"{what} not met after {timeout}s")
        time.sleep(interval)


def get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def syncz(status_port):
    return get_json(f"http://127.0.0.1:{status_port}/debug/syncz")


def http_get(url, timeout=2):
    """(status, body) of a GET, whatever the status; (None, error) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, repr(e)


class ManagedProxy:
    """What sidecars and gateways share: the admin port and the health port (/healthz/ready)."""

    def ready(self):
        return http_get(f"http://127.0.0.1:{self.health}/healthz/ready")[0] == 200

    def wait_ready(self, timeout=20):
        def ready():
            if not self.running():
                raise RuntimeError(f"{self.name} exited: {self.process.stderr()[-2000:]}")
            return self.ready()
        try:
            wait_until(ready, timeout, what=f"{self.name} ready (/healthz/ready)")
        except TimeoutError:
            status, body = http_get(f"http://127.0.0.1:{self.health}/healthz/ready")
            raise TimeoutError(f"{self.name} not ready after {timeout}s: {status} {body!r}, "
                               f"running: {self.running()}")

    def config_dump(self):
        return get_json(f"http://127.0.0.1:{self.admin}/config_dump")


class Client:
    """One keep-alive HTTP/1.1 connection; a failed exchange is returned as status None."""

    def __init__(self, port, timeout=5.0):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def get(self, host, path="/", headers=None):
        return self.request("GET", host, path, headers)

    def request(self, method, host, path="/", headers=None, body=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self.conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
            r = self.conn.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            return None, {"error": repr(e)}, b""
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if hdrs.get("connection", "").lower() == "close":
            self.close()
        return r.status, hdrs, body

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def label(status, headers):
    """What a response counts as: the demo-app that answered, or its status/error."""
    if status == 200 and "x-service" in headers:
        return headers["x-service"]
    return f"status {status}: {headers.get('error', '')}"


def tally(port, host, count, headers=None, path="/"):
    """Sends `count` requests on one connection; counts them by `label`."""
    client = Client(port)
    counts = collections.Counter()
    try:
        for _ in range(count):
            counts[label(*client.get(host, path, headers)[:2])] += 1
    finally:
        client.close()
    return counts


class Load:
    """Bounded background traffic: `threads` keep-alive clients, each stopping at `max_requests`
    or `max_seconds`, waiting `pause` seconds between requests. Records (time, label) for every request."""

    def __init__(self, port, host, threads=2, max_requests=20_000, max_seconds=30.0, headers=None, pause=0.0):
        self.port, self.host, self.headers, self.pause = port, host, headers, pause
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.lock = threading.Lock()
        self.results = []
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def _run(self):
        client = Client(self.port)
        deadline = time.time() + self.max_seconds
        try:
            for _ in range(self.max_requests):
                if self.stop_flag.is_set() or time.time() > deadline:
                    break
                if self.pause and self.stop_flag.wait(self.pause):
                    break
                status, headers, _ = client.get(self.host, headers=self.headers)
                with self.lock:
                    self.results.append((time.time(), label(status, headers)))
        finally:
            client.close()

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=self.max_seconds + 10)

    def snapshot(self):
        with self.lock:
            return list(self.results)

    def failures(self):
        return [r for r in self.snapshot() if r[1].startswith("status ")]

    def wait_requests(self, n, timeout=10):
        wait_until(lambda: len(self.snapshot()) >= n, timeout, what=f"{n} requests")


class Workload(ManagedProxy):
    """A demo-app (optional) behind a `meshd sidecar`."""

    def __init__(self, cp, app, version, with_app=True, extra_args=(), app_args=()):
        self.cp = cp
        self.name = f"{app}-{version}"
        self.id = f"sidecar~127.0.0.1~{self.name}.default"
        self.app_port, self.inbound, self.outbound, self.admin = free_port(), free_port(), free_port(), free_port()
        self.health = free_port()
        mesh = cp.mesh
        self.app = None
        if with_app:
            self.app = mesh.start([MESHD, "demo-app", "--port", str(self.app_port), "--name", self.name,
                                   "--outbound", f"127.0.0.1:{self.outbound}", *app_args], self.name)
        self.sidecar = mesh.start([MESHD, "sidecar", "--control-plane", f"127.0.0.1:{cp.discovery_port}",
                                   "--name", self.name, "--labels", f"app={app},version={version}",
                                   "--app-port", str(self.app_port), "--inbound-port", str(self.inbound),
                                   "--outbound-port", str(self.outbound), "--admin-port", str(self.admin),
                                   "--health-port", str(self.health),
                                   "--concurrency", "1", "--drain-timeout", "2", *extra_args], self.name + "-sidecar")
        self.process = self.sidecar

    def running(self):
        return self.sidecar.proc.poll() is None

    def wait_ready(self, timeout=20):
        """The sidecar holds its config from the control plane (its listeners are bound), and
        its app (if any) accepts connections."""
        super().wait_ready(timeout)
        if self.app is not None:
            wait_for_port(self.app_port, timeout)


class Gateway(ManagedProxy):
    def __init__(self, cp, name="ingressgateway", labels="istio=ingressgateway", extra_args=()):
        self.name = name
        self.id = f"gateway~127.0.0.1~{name}.default"
        self.admin, self.health = free_port(), free_port()
        self.process = cp.mesh.start([MESHD, "gateway", "--control-plane", f"127.0.0.1:{cp.discovery_port}",
                                      "--name", name, "--labels", labels, "--admin-port", str(self.admin),
                                      "--health-port", str(self.health),
                                      "--concurrency", "1", "--drain-timeout", "2", *extra_args], name)

    def running(self):
        return self.process.proc.poll() is None


class ControlPlane:
    """A config directory served by `meshd control-plane`, and the proxies connected to it."""

    def __init__(self, mesh, files=None):
        self.mesh = mesh
        self.config_dir = os.path.join(mesh.workdir, "config")
        os.makedirs(self.config_dir, exist_ok=True)
        self.discovery_port, self.status_port = free_port(), free_port()
        self.process = None
        self.proxies = []
        for name, text in (files or {}).items():
            self.write(name, text)

    # -- config directory

    def write(self, name, text):
        """Replaces a config file atomically (the temporary name is not a YAML name)."""
        path = os.path.join(self.config_dir, name)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)

    def remove(self, name):
        os.remove(os.path.join(self.config_dir, name))

    # -- processes

    def start(self, debounce_ms=50, extra_args=()):
        self.process = self.mesh.start([MESHD, "control-plane", "--config-dir", self.config_dir,
                                        "--discovery-port", str(self.discovery_port),
                                        "--status-port", str(self.status_port), "--debounce-ms", str(debounce_ms),
                                        *extra_args],
                                       "control-plane")
        wait_for_port(self.discovery_port)
        wait_for_port(self.status_port)
        return self

    def sidecar(self, app, version="v1", with_app=True, extra_args=(), app_args=()):
        w = Workload(self, app, version, with_app, extra_args, app_args)
        self.proxies.append(w)
        return w

    def gateway(self, **kw):
        g = Gateway(self, **kw)
        self.proxies.append(g)
        return g

    # -- status

    def syncz(self):
        return syncz(self.status_port)

    def config_status(self):
        return get_json(f"http://127.0.0.1:{self.status_port}/debug/config_status")

    def convergence(self):
        return get_json(f"http://127.0.0.1:{self.status_port}/debug/convergence")

    def wait_synced(self, ids=None, changed_from=None, timeout=20):
        """Waits until the mesh converged with exactly the proxies `ids` (default: every started,
        running one): the control plane shows each of them SYNCED and no push pending (so no
        later push changes their config). With `changed_from` (a syncz snapshot), each of them
        must also have been sent a version other than the one it had then. Returns the rows."""
        if ids is None:
            ids = [p.id for p in self.proxies if p.running()]
        before = {r["id"]: r["sentVersion"] for r in (changed_from or [])}

        def check():
            c = self.convergence()
            rows = c["proxies"]
            if not c["converged"] or sorted(r["id"] for r in rows) != sorted(ids):
                return None
            if changed_from is not None and any(before.get(r["id"]) == r["sentVersion"] for r in rows):
                return None
            return rows
        try:
            return wait_until(check, timeout, what="mesh converged")
        except TimeoutError:
            raise TimeoutError(f"mesh not converged: want {sorted(ids)}, have {self.convergence()}")

    def wait_ready(self, timeout=30):
        """Every started proxy reports ready (/healthz/ready) and the mesh converged; a proxy
        that exited is an error."""
        for p in self.proxies:
            p.wait_ready(timeout)
        return self.wait_synced(timeout=timeout)

    def apply(self, files, changed=None, timeout=10):
        """Writes config files, waits until the control plane accepted them and every proxy in
        `changed` (default: all) acknowledged a new version."""
        version = self.config_status()["configVersion"]
        before = self.syncz()
        if changed is not None:
            before = [r for r in before if r["id"] in changed]
        for name, text in files.items():
            self.write(name, text)
        wait_until(lambda: self.config_status()["configVersion"] > version, timeout,
                   what=f"config version above {version}")
        return self.wait_synced(changed_from=before, timeout=timeout)

    def meshd(self, *args, timeout=20):
        """Runs a meshd CLI command against this control plane's status port."""
        r = subprocess.run([MESHD, *args, "--control-plane-status", f"127.0.0.1:{self.status_port}"],
                           capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, f"meshd {' '.join(args)} failed: {r.stderr}"
        return r.stdout

    def kill(self, sig=signal.SIGKILL):
        self.process.stop(sig)


def service_entry(app):
    """A mesh-internal ServiceEntry for `app` on port 9080, selecting workloads labelled app=<app>."""
    return f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {app}}}
spec:
  hosts: [{app}.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  resolution: STATIC
  workloadSelector: {{labels: {{app: {app}}}}}
"""


class LoopbackHTTP:
    """A small HTTP/1.1 server on a free loopback port, run on threads of this process:
    `answer(method, path, headers)` gives (status, headers dict, body bytes) for each request
    (`answer(method, path, headers, body)` with `with_body`: the request's body as bytes).
    Stopped with `stop()` (also safe when not started or already stopped)."""

    def __init__(self, answer, with_body=False):
        self.port = free_port()
        self.answer = answer
        self.with_body = with_body
        self.server = None

    def start(self):
        answer, with_body = self.answer, self.with_body

        class Handler(http.server.BaseHTTPRequestHandler):
            def handle_any(self):
                headers = {k.lower(): v for k, v in self.headers.items()}
                if with_body:
                    request_body = self.rfile.read(int(headers.get("content-length", "0")))
                    status, headers, body = answer(self.command, self.path, headers, request_body)
                else:
                    status, headers, body = answer(self.command, self.path, headers)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = handle_any

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def write_mesh_config(cp, text):
    """Writes the mesh config file (atomically) beside the control plane's config directory."""
    path = os.path.join(cp.mesh.workdir, "mesh.yaml")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    return path
