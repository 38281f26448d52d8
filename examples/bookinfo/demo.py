#!/usr/bin/env python3
"""The meshd demo (`make demo`): bookinfo on 127.0.0.1, no Kubernetes.

Starts the control plane on a copy of examples/bookinfo, the bookinfo services (served by
`meshd demo-app`) each behind a `meshd sidecar`, and an ingress `meshd gateway`; drives
traffic through the gateway and prints a live table (requests per reviews version, the
header the reviews Lua plugin adds, errors); then edits the weights and the plugin on disk
and shows the change taking effect with no restart and no failed request; then stops
everything and checks nothing is left running. The control plane's mesh page (a live graph
of the traffic, with each hop's rate, errors, p99 and mTLS) is at the URL it prints; with
`--hold` (`make demo HOLD=1`) the mesh keeps running, with light traffic, until Ctrl-C.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
HOLD = "--hold" in sys.argv[1:]
MESHD = os.path.abspath(ARGS[0] if ARGS else ".build/debug/meshd")
WORKLOADS = [  # (app, version, services it calls)
    ("productpage", "v1", ["reviews", "details"]),
    ("details", "v1", []),
    ("reviews", "v1", []),
    ("reviews", "v2", ["ratings"]),
    ("reviews", "v3", ["ratings"]),
    ("ratings", "v1", []),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} never opened")


class Mesh:
    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, name, *args):
        log = open(os.path.join(self.workdir, name + ".log"), "wb")
        p = subprocess.Popen([MESHD, *args], stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((name, p))
        return p

    def stop(self):
        for _, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = {}
        for name, p in self.procs:
            try:
                codes[name] = p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[name] = p.wait()
        return codes


def syncz(status_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{status_port}/debug/syncz", timeout=5) as r:
        return json.loads(r.read())


def convergence(status_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{status_port}/debug/convergence", timeout=5) as r:
        return json.loads(r.read())


class Traffic:
    """Bounded load through the gateway: a few threads, each one keep-alive connection."""

    def __init__(self, port, threads=4, pause=0.0):
        self.port = port
        self.pause = pause
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.reset()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def reset(self):
        with getattr(self, "lock", threading.Lock()):
            self.counts = {}
            self.stamps = {}
            self.errors = 0
            self.total = 0

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        sent = 0
        while not self.stop_flag.is_set() and sent < 100_000:
            sent += 1
            if self.pause:
                self.stop_flag.wait(self.pause)
            try:
                conn.request("GET", "/productpage")
                r = conn.getresponse()
                data = r.read()
                reviews = json.loads(data)["calls"]["reviews"] if r.status == 200 else None
                ok = reviews is not None and reviews["status"] == 200
                version = reviews["body"]["service"] if ok else None
                stamp = reviews["headers"].get("x-reviews-plugin", "-") if ok else None
            except Exception:
                ok, version, stamp = False, None, None
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            with self.lock:
                self.total += 1
                if not ok:
                    self.errors += 1
                    continue
                self.counts[version] = self.counts.get(version, 0) + 1
                self.stamps[stamp] = self.stamps.get(stamp, 0) + 1

    def row(self, label):
        with self.lock:
            n = max(1, sum(self.counts.values()))
            pct = {v: 100.0 * self.counts.get(f"reviews-{v}", 0) / n for v in ("v1", "v2", "v3")}
            stamp = max(self.stamps, key=self.stamps.get) if self.stamps else "-"
            return (f"{label:<34} {self.total:>7} {pct['v1']:>7.1f}% {pct['v2']:>7.1f}% {pct['v3']:>7.1f}% "
                    f"{stamp:>22} {self.errors:>7}")


def jason_version(port):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/productpage", headers={"end-user": "jason"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["calls"]["reviews"]["body"]["service"]


def hold(gateway_port, dashboard):
    """Keeps the mesh up, with a few requests a second through the gateway, until Ctrl-C (or SIGTERM)."""
    def interrupt(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)
    traffic = Traffic(gateway_port, threads=1, pause=0.2)
    for t in traffic.threads:
        t.start()
    print(f"\nholding the mesh: {dashboard} (gateway http://127.0.0.1:{gateway_port}/productpage); Ctrl-C stops it")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nCtrl-C: stopping the mesh")
    finally:
        traffic.stop_flag.set()
        for t in traffic.threads:
            t.join(timeout=15)


def main():
    workdir = tempfile.mkdtemp(prefix="meshd-demo-")
    config = os.path.join(workdir, "config")
    shutil.copytree(HERE, config, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    gateway_port = free_port()
    gw_file = os.path.join(config, "gateway.yaml")
    with open(gw_file) as f:
        text = f.read().replace("number: 8080", f"number: {gateway_port}")
    with open(gw_file, "w") as f:
        f.write(text)

    mesh = Mesh(workdir)
    started = time.time()
    try:
        discovery, status = free_port(), free_port()
        mesh.start("control-plane", "control-plane", "--config-dir", config, "--discovery-port", str(discovery),
                   "--status-port", str(status), "--debounce-ms", "100")
        wait_port(discovery)

        def token(sa):
            # A bootstrap token per identity: each proxy gets a SPIFFE certificate with it, and
            # sidecars talk to each other over mutual TLS (docs/security.md).
            path = os.path.join(workdir, f"{sa}.token")
            if os.path.exists(path):  # written once: a running sidecar may be reading it
                return path
            with open(path, "w") as f:
                subprocess.run([MESHD, "control-plane", "token", "--config-dir", config, "--namespace", "default",
                                "--service-account", sa], stdout=f, check=True)
            return path
        for app, version, calls in WORKLOADS:
            name = f"{app}-{version}"
            app_port, inbound, outbound, admin = free_port(), free_port(), free_port(), free_port()
            mesh.start(name, "demo-app", "--port", str(app_port), "--name", name,
                       "--calls", ",".join(calls), "--outbound", f"127.0.0.1:{outbound}")
            mesh.start(name + "-sidecar", "sidecar", "--control-plane", f"127.0.0.1:{discovery}", "--name", name,
                       "--labels", f"app={app},version={version}", "--app-port", str(app_port),
                       "--inbound-port", str(inbound), "--outbound-port", str(outbound),
                       "--admin-port", str(admin), "--health-port", str(free_port()), "--concurrency", "1",
                       "--service-account", f"bookinfo-{app}", "--token-file", token(f"bookinfo-{app}"))
        mesh.start("ingressgateway", "gateway", "--control-plane", f"127.0.0.1:{discovery}", "--name", "ingressgateway",
                   "--labels", "istio=ingressgateway", "--admin-port", str(free_port()),
                   "--health-port", str(free_port()), "--concurrency", "1",
                   "--service-account", "istio-ingressgateway", "--token-file", token("istio-ingressgateway"))
        wait_port(status)
        deadline = time.time() + 30
        while time.time() < deadline:
            # Converged: every proxy acknowledged the last config it was sent, and no push is pending.
            c = convergence(status)
            if len(c["proxies"]) == len(WORKLOADS) + 1 and c["converged"]:
                break
            time.sleep(0.1)
        else:
            raise SystemExit(f"proxies did not sync: {syncz(status)}")
        wait_port(gateway_port)
        # The demo apps start beside their sidecars: wait until a request crosses the whole mesh once.
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{gateway_port}/productpage", timeout=5) as r:
                    if json.loads(r.read())["calls"]["reviews"]["status"] == 200:
                        break
            except Exception:
                pass
            if time.time() > deadline:
                raise SystemExit("the mesh never served /productpage")
            time.sleep(0.1)
        print(f"\nmesh up in {time.time() - started:.1f}s: control plane, {len(WORKLOADS)} services with sidecars, "
              f"gateway on 127.0.0.1:{gateway_port}")
        subprocess.run([MESHD, "proxy-status", "--control-plane-status", f"127.0.0.1:{status}"])
        print("\nmTLS identities (every hop between proxies is mutual TLS, checked against these):")
        for name in [f"{app}-{version}" for app, version, _ in WORKLOADS] + ["ingressgateway"]:
            out = subprocess.run([MESHD, "proxy-config", "secret", name, "--control-plane-status", f"127.0.0.1:{status}"],
                                 capture_output=True, text=True).stdout.splitlines()
            identity = next((line.split()[1] for line in out if line.startswith("default ")), "none")
            print(f"  {name:<22} {identity}")
        dashboard = subprocess.run([MESHD, "dashboard", "--control-plane", f"127.0.0.1:{status}"],
                                   capture_output=True, text=True).stdout.strip()
        print(f"\nmesh page (live graph of the traffic, mTLS on each hop): {dashboard}")
        print(f"\nend-user: jason → {jason_version(gateway_port)} (header-match route)\n")

        header = f"{'phase':<34} {'reqs':>7} {'v1':>8} {'v2':>8} {'v3':>8} {'x-reviews-plugin':>22} {'errors':>7}"
        print(header)
        print("-" * len(header))
        traffic = Traffic(gateway_port)
        for t in traffic.threads:
            t.start()
        for i in range(4):
            time.sleep(2)
            print(traffic.row(f"weights 80/20 ({2 * (i + 1)}s)"))
        before_errors = traffic.errors

        # Edit the weights and the plugin on disk: the control plane pushes, proxies hot-swap.
        reviews = os.path.join(config, "reviews.yaml")
        with open(reviews) as f:
            text = f.read().replace("weight: 80", "weight: 10").replace("weight: 20", "weight: 90")
        with open(reviews, "w") as f:
            f.write(text)
        plugin = os.path.join(config, "reviews-plugin.yaml")
        with open(plugin) as f:
            text = f.read().replace("hello from lua v1", "hello from lua v2")
        with open(plugin, "w") as f:
            f.write(text)
        print(f"{'-- edited on disk: weights 10/90, plugin v2 --':<34}")
        time.sleep(1)
        traffic.reset()
        for i in range(4):
            time.sleep(2)
            print(traffic.row(f"weights 10/90 ({2 * (i + 1)}s)"))
        traffic.stop_flag.set()
        for t in traffic.threads:
            t.join()
        print(f"\nfailed requests across both phases: {before_errors + traffic.errors}")
        subprocess.run([MESHD, "proxy-status", "--control-plane-status", f"127.0.0.1:{status}"])
        if HOLD:
            hold(gateway_port, dashboard)
    finally:
        codes = mesh.stop()
        left = [n for n, p in mesh.procs if p.poll() is None]
        print(f"\nstopped {len(codes)} processes ({'all exited 0' if set(codes.values()) == {0} else codes}); "
              f"{'none' if not left else left} left running; {time.time() - started:.0f}s in all")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
