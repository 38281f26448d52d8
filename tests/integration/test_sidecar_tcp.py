"""TCP through sidecars: a Sidecar resource's egress listener with a port (meshd captures no
traffic, so the client connects to it), mutual TLS to the destination's sidecar, whose inbound
proxies the bytes to a real TCP echo server (tcp_echo.py, like Istio's tcp-echo sample);
weighted tcp routes as in Istio's tcp-echo-20-v2, half-close, TCP AuthorizationPolicy and
Istio's TCP metrics on the inbound; protocol sniffing on an unnamed port; ALLOW_ANY and
REGISTRY_ONLY for destinations no route names."""
import os
import socket
import ssl
import subprocess
import sys
from collections import Counter

from certs import make_certs
from conftest import free_port, wait_for_port
from mesh_harness import ControlPlane, http_get, service_entry, wait_until
from test_identity import token
from test_tcp_proxy import closed_without_reply, exchange, read_line, tcp_echo_service

HERE = os.path.dirname(os.path.abspath(__file__))


def tcp_echo_registry(port):
    return tcp_echo_service(port) + """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-echo-destination}
spec:
  host: tcp-echo
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"""


def weighted_routes(port, v2_weight):
    """Istio's tcp-echo-20-v2 routes, for the mesh (sidecars) instead of the gateway."""
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: tcp-echo}}
spec:
  hosts: [tcp-echo]
  tcp:
  - match: [{{port: {port}}}]
    route:
    - {{destination: {{host: tcp-echo, port: {{number: {port}}}, subset: v1}}, weight: {100 - v2_weight}}}
    - {{destination: {{host: tcp-echo, port: {{number: {port}}}, subset: v2}}, weight: {v2_weight}}}
"""


def sidecar_egress(port, hosts, protocol="protocol: TCP, name: tcp", extra_entries="", policy=""):
    return f"""
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: sleep}}
spec:
  workloadSelector: {{labels: {{app: sleep}}}}
  egress:
  - port: {{number: {port}, {protocol}}}
    hosts: {hosts}
{extra_entries}  - hosts: ["./*"]
{policy}"""


STRICT = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
"""


def echo_workload(cp, version, prefix, mtls=True):
    """A tcp-echo workload: the echo server on the sidecar's app port."""
    extra = ["--service-account", "tcp-echo", "--token-file", token(cp, "default", "tcp-echo", f"echo-{version}")] if mtls else []
    w = cp.sidecar("tcp-echo", version, with_app=False, extra_args=extra)
    cp.mesh.start([sys.executable, os.path.join(HERE, "tcp_echo.py"), str(w.app_port), prefix], f"echo-{version}")
    wait_for_port(w.app_port)
    return w


def sleep_workload(cp, mtls=True):
    extra = ["--service-account", "sleep", "--token-file", token(cp, "default", "sleep", "sleep")] if mtls else []
    return cp.sidecar("sleep", "v1", with_app=False, extra_args=extra)


def half_closed_exchange(port, lines):
    """Sends lines, ends its writes (FIN), and reads every echo and the server's last words,
    which it only says after seeing that FIN: the reply must still come back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for line in lines:
            s.sendall(line + b"\n")
        s.shutdown(socket.SHUT_WR)
        got = [read_line(s) for _ in range(len(lines) + 1)]
        s.settimeout(10)
        assert s.recv(10) == b""
    prefix = got[0].split(b" ")[0]
    assert got == [prefix + b" " + l + b"\n" for l in lines] + [prefix + b" bye %d\n" % sum(len(l) + 1 for l in lines)], got
    return prefix


def inbound_tcp_series(proxy, family):
    return [l for l in http_get(f"http://127.0.0.1:{proxy.admin}/stats/prometheus")[1].splitlines()
            if l.startswith(family + "{") and 'reporter="destination"' in l]


def test_tcp_through_sidecars_with_mtls_weights_half_close_policy_and_metrics(mesh):
    port = free_port()
    cp = ControlPlane(mesh, {"registry.yaml": tcp_echo_registry(port), "peer.yaml": STRICT,
                             "routes.yaml": weighted_routes(port, 20),
                             "sidecar.yaml": sidecar_egress(port, "[./tcp-echo.default.svc.cluster.local]")}).start()
    v1, v2 = echo_workload(cp, "v1", "one"), echo_workload(cp, "v2", "two")
    sleep = sleep_workload(cp)
    cp.wait_ready()
    wait_for_port(port)

    # Half-closed connections survive both sidecars and the mTLS hop between them.
    assert half_closed_exchange(port, [b"hello", b"world"]) in (b"one", b"two")
    # tcp-echo-20-v2's weights, over connections.
    counts = Counter(exchange(port).split(b" ")[0] for _ in range(300))
    assert set(counts) == {b"one", b"two"}, counts
    assert abs(counts[b"two"] / 300 - 0.20) <= 0.07, counts

    # The server sidecars count Istio's TCP metrics as the destination, over mutual TLS, with
    # the client's identity (STRICT: nothing reached them in plaintext).
    def closed(w):
        return sum(int(l.rsplit(" ", 1)[1]) for l in inbound_tcp_series(w, "istio_tcp_connections_closed_total")
                   if 'connection_security_policy="mutual_tls"' in l
                   and 'source_principal="spiffe://cluster.local/ns/default/sa/sleep"' in l)
    wait_until(lambda: closed(v1) + closed(v2) >= 301, 15, what="inbound TCP metrics")
    assert closed(v2) >= 20

    # Plaintext to a STRICT inbound: closed before a byte reaches the app.
    assert closed_without_reply(v1.inbound)

    # A TCP AuthorizationPolicy on the echo workloads, by the client's mTLS principal.
    deny = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-sleep}
spec:
  selector: {matchLabels: {app: tcp-echo}}
  action: DENY
  rules: [{from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"]}}]}]
"""
    echoes = [v1.id, v2.id]
    cp.apply({"zz-policy.yaml": deny}, changed=echoes)
    assert closed_without_reply(port)
    cp.apply({"zz-policy.yaml": deny.replace("sa/sleep", "sa/other")}, changed=echoes)
    assert exchange(port, b"again").endswith(b" again\n")


def test_sniffing_sends_http1_h2c_and_raw_tcp_through_one_unnamed_port(mesh):
    port = free_port()
    registry = tcp_echo_registry(port) + "---\n" + service_entry("reviews").replace("9080", str(port))
    cp = ControlPlane(mesh, {"registry.yaml": registry,
                             "sidecar.yaml": sidecar_egress(port, "[./*]", protocol="name: unnamed")}).start()
    echo_workload(cp, "v1", "one", mtls=False)
    cp.sidecar("reviews")
    sleep_workload(cp, mtls=False)
    cp.wait_ready()
    wait_for_port(port)
    host = f"reviews.default.svc.cluster.local:{port}"

    def curl(*args):
        r = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                            *args, "-H", f"Host: {host}", f"http://127.0.0.1:{port}/"],
                           capture_output=True, text=True, timeout=20)
        return r.stdout.lower()

    # HTTP/1: routed by Host to reviews' sidecar and app.
    out = curl()
    assert out.endswith("200 1.1") and "x-service: reviews-v1" in out, out
    # h2c with prior knowledge: the preface says HTTP/2.
    out = curl("--http2-prior-knowledge")
    assert out.endswith("200 2") and "x-service: reviews-v1" in out, out
    # Anything else is bytes: the tcp route (straight to tcp-echo), half-close included.
    assert exchange(port, b"plain bytes") == b"one plain bytes\n"
    assert half_closed_exchange(port, [b"x"]) == b"one"


def test_tcp_egress_to_destinations_no_route_names_allow_any_and_registry_only(mesh, tmp_path):
    """Istio sends what no route takes to PassthroughCluster (ALLOW_ANY) or BlackHoleCluster
    (REGISTRY_ONLY). With no captured original destination, meshd's passthrough can only
    follow a ClientHello's SNI (to that host, on the listener's port); other bytes are closed."""
    port, tcp_port = free_port(), free_port()
    # A TLS echo server for "localhost" on 127.0.0.1:port; the egress listener binds 127.0.0.2:port.
    certs = make_certs(str(tmp_path))
    mesh.start([sys.executable, os.path.join(HERE, "tcp_echo.py"), str(port), "ext", "--tls",
                certs["cert"], certs["key"]], "tls-echo")
    wait_for_port(port)
    extra = f"""  - port: {{number: {tcp_port}, name: tcp, protocol: TCP}}
    bind: 127.0.0.2
    hosts: [./nothing.example.com]
"""
    sidecar = sidecar_egress(port, "[./nothing.example.com]", protocol="name: tls, protocol: TLS", extra_entries=extra)
    sidecar = sidecar.replace(f"number: {port}, name: tls, protocol: TLS}}\n", f"number: {port}, name: tls, protocol: TLS}}\n    bind: 127.0.0.2\n")
    cp = ControlPlane(mesh, {"sidecar.yaml": sidecar}).start()
    sleep_workload(cp, mtls=False)
    cp.wait_ready()
    wait_for_port(port, host="127.0.0.2")

    def tls_exchange():
        context = ssl.create_default_context(cafile=certs["ca"])
        with socket.create_connection(("127.0.0.2", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"hi\n")
                return read_line(s)

    # ALLOW_ANY (the default): the ClientHello names localhost; passed through to it, untouched
    # (the client verifies the server's own certificate end to end).
    assert tls_exchange() == b"ext hi\n"
    # Raw bytes to a port no service has: nowhere to send them, closed.
    try:
        with socket.create_connection(("127.0.0.2", tcp_port), timeout=10) as s:
            s.sendall(b"hello\n")
            assert read_line(s) == b""
    except ConnectionResetError:
        pass

    cp.apply({"sidecar.yaml": sidecar + "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"})
    try:
        result = tls_exchange()
    except (ssl.SSLError, OSError) as e:
        result = repr(e)
    assert result != b"ext hi\n", result
