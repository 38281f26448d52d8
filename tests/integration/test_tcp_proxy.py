"""TCP proxy listeners (Envoy's tcp_proxy) and TLS passthrough by SNI, with real TCP echo
servers (tcp_echo.py, like Istio's tcp-echo sample): half-close, weights, idle timeout,
upstream failures, SNI routing, and Istio's tcp-echo samples through a gateway."""
import os
import socket
import ssl
import sys
import time
from collections import Counter

import pytest

from certs import make_certs
from conftest import free_port, wait_for_port
from mesh_harness import ControlPlane, http_get, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = os.environ.get("MESHD_ISTIO_SAMPLES", "")
needs_samples = pytest.mark.skipif(not SAMPLES or not os.path.isdir(SAMPLES),
                                   reason="Istio samples not available (set MESHD_ISTIO_SAMPLES)")


def echo(mesh, prefix, tls=None):
    port = free_port()
    args = [sys.executable, os.path.join(HERE, "tcp_echo.py"), str(port), prefix]
    if tls:
        args += ["--tls", tls["cert"], tls["key"]]
    mesh.start(args, f"echo-{prefix}")
    wait_for_port(port)
    return port


def tcp_config(port, routes, clusters, **tcp_extra):
    return {
        "listeners": [{"name": "tcp", "address": "127.0.0.1", "port": port, "routeConfig": "",
                       "tcpProxy": {"routes": routes, **tcp_extra}}],
        "clusters": [{"name": name, "endpoints": [{"address": "127.0.0.1", "port": p}]} for name, p in clusters.items()],
    }


def tcp_proxy(mesh, config):
    """A proxy whose readiness probe (the harness connects once to see the port listening)
    is already in its access log: that line is logged when the probe's session ends, which
    can be after a test's first connection, so `logs` could otherwise drop the wrong line."""
    proxy = mesh.proxy(config)
    proxy.access_log(wait_lines=1)
    return proxy


def logs(proxy, n):
    """The access-log lines of the `n` connections after the readiness probe's (see `tcp_proxy`)."""
    return proxy.access_log(wait_lines=n + 1)[1:]


def read_line(sock, deadline=10.0):
    """One line, or b"" when the peer closed first."""
    sock.settimeout(deadline)
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            return data
        data += chunk
    return data


def exchange(port, line=b"hello", timeout=10.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(line + b"\n")
        return read_line(s, timeout)


def conversation(port, lines):
    """With an echo server "one": each line is echoed, then the client ends its writes and
    reads "one bye <bytes>" (the server's last words only come after it saw that FIN) and
    the close."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for line in lines:
            s.sendall(line + b"\n")
            assert read_line(s) == b"one " + line + b"\n"
        s.shutdown(socket.SHUT_WR)
        assert read_line(s) == b"one bye %d\n" % sum(len(l) + 1 for l in lines)
        s.settimeout(10)
        assert s.recv(10) == b""


def test_half_close_passes_fin_and_keeps_reading(mesh):
    up = echo(mesh, "one")
    port = free_port()
    proxy = tcp_proxy(mesh, tcp_config(port, [{"cluster": "echo"}], {"echo": up}))
    conversation(port, [b"hello", b"world"])
    lines = logs(proxy, 1)
    assert len(lines) == 1 and '"- - -" 0 - - - "-" 12 31 ' in lines[0], lines
    # The probe's connection counts too: the echo server answered its FIN with "one bye 0\n".
    wait_until(lambda: proxy.stat("meshd_tcp_downstream_cx_rx_bytes_total") == 12, 5, what="rx bytes counted")
    assert proxy.stat("meshd_tcp_downstream_cx_tx_bytes_total") == 31 + 10
    assert proxy.stat("meshd_tcp_upstream_cx_total") == 2


def test_large_transfer_both_ways(mesh):
    """Back-pressure: a payload much larger than socket buffers arrives whole."""
    up = echo(mesh, "big")
    port = free_port()
    mesh.proxy(tcp_config(port, [{"cluster": "echo"}], {"echo": up}))
    payload = b"".join(b"%07d\n" % i for i in range(300_000))  # 2.4 MB, 300000 lines
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        import threading
        sender = threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)))
        sender.start()
        received = bytearray()
        s.settimeout(60)
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            received += chunk
        sender.join(30)
    lines = bytes(received).split(b"\n")
    assert lines[-2] == b"big bye %d" % len(payload)
    assert len(lines) == 300_000 + 2 and lines[299_999] == b"big 0299999"


def test_weighted_routes_over_connections(mesh):
    one, two = echo(mesh, "one"), echo(mesh, "two")
    port = free_port()
    mesh.proxy(tcp_config(port, [{"weightedClusters": [{"name": "v1", "weight": 80}, {"name": "v2", "weight": 20}]}],
                          {"v1": one, "v2": two}))
    counts = Counter(exchange(port).split(b" ")[0] for _ in range(300))
    assert set(counts) == {b"one", b"two"}, counts
    assert abs(counts[b"two"] / 300 - 0.20) <= 0.07, counts


def test_idle_timeout_closes(mesh):
    up = echo(mesh, "one")
    port = free_port()
    proxy = tcp_proxy(mesh, tcp_config(port, [{"cluster": "echo"}], {"echo": up}, idleTimeoutMs=400))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"hi\n")
        assert read_line(s) == b"one hi\n"
        start = time.monotonic()
        s.settimeout(15)
        assert s.recv(10) == b""
        assert time.monotonic() - start >= 0.3
    wait_until(lambda: proxy.stat("meshd_tcp_idle_timeout_total") == 1, 5, what="idle timeout counted")


def test_upstream_down_and_no_endpoints(mesh):
    dead = free_port()
    port = free_port()
    config = tcp_config(port, [{"cluster": "down"}], {"down": dead})
    proxy = tcp_proxy(mesh, config)
    assert closed_without_reply(port)
    lines = logs(proxy, 1)
    assert " UF " in lines[0], lines
    assert proxy.stat("meshd_tcp_upstream_cx_connect_fail_total") == 2
    config["clusters"][0]["endpoints"] = []
    proxy.write_config(config)
    proxy.wait_version(2)
    assert closed_without_reply(port)
    lines = logs(proxy, 2)
    assert " UH " in lines[1], lines


def closed_without_reply(port, line=b"hello"):
    """The proxy closed the connection without a byte (a reset counts: it closed with the
    client's bytes unread)."""
    try:
        return exchange(port, line) == b""
    except ConnectionResetError:
        return True


@pytest.fixture
def certs(tmp_path):
    return make_certs(str(tmp_path))


def tls_exchange(port, server_name, timeout=10.0):
    """A TLS session with the backend through the proxy (the proxy never terminates it)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as s:
            s.sendall(b"secret\n")
            return read_line(s, timeout)


def test_tls_passthrough_by_sni(mesh, certs):
    alpha, beta = echo(mesh, "alpha", tls=certs), echo(mesh, "beta", tls=certs)
    port = free_port()
    proxy = tcp_proxy(mesh, tcp_config(port, [
        {"match": {"serverNames": ["alpha.test"]}, "cluster": "alpha"},
        {"match": {"serverNames": ["*.beta.test"]}, "cluster": "beta"},
    ], {"alpha": alpha, "beta": beta}))
    for _ in range(5):
        assert tls_exchange(port, "alpha.test") == b"alpha secret\n"
        assert tls_exchange(port, "api.beta.test") == b"beta secret\n"
    lines = logs(proxy, 10)
    # %REQUESTED_SERVER_NAME% and %UPSTREAM_CLUSTER_RAW%, as Istio's format logs them.
    assert sum(" alpha.test " in l and " alpha " in l for l in lines) == 5, lines
    assert sum(" api.beta.test " in l and " beta " in l for l in lines) == 5, lines


def test_bad_or_absent_sni_is_closed_cleanly(mesh, certs):
    alpha = echo(mesh, "alpha", tls=certs)
    port = free_port()
    proxy = tcp_proxy(mesh, tcp_config(port, [{"match": {"serverNames": ["alpha.test"]}, "cluster": "alpha"}],
                                  {"alpha": alpha}, inspectTimeoutMs=500))
    # An unknown name, no name at all, plain text, and a client that sends nothing.
    for name in ("other.test", None):
        with pytest.raises((ssl.SSLError, OSError)):
            tls_exchange(port, name)
    assert closed_without_reply(port, b"GET / HTTP/1.1\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.settimeout(10)
        assert s.recv(10) == b""
    # A truncated ClientHello followed by a half-close.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(bytes([22, 3, 1, 0, 200, 1, 0, 0]))
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        assert s.recv(10) == b""
    lines = logs(proxy, 5)
    assert len(lines) == 5 and all(" NR " in l for l in lines), lines
    # The listener still serves a good name.
    assert tls_exchange(port, "alpha.test") == b"alpha secret\n"


# -- Istio's tcp-echo samples through a gateway


def tcp_echo_service(port=9000):
    """Istio's tcp-echo as a ServiceEntry selecting workloads labelled app=tcp-echo."""
    return f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: tcp-echo}}
spec:
  hosts: [tcp-echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{{number: {port}, name: tcp, protocol: TCP}}]
  resolution: STATIC
  workloadSelector: {{labels: {{app: tcp-echo}}}}
"""


REGISTRY = tcp_echo_service().replace("{", "{{").replace("}", "}}") + """---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: tcp-echo-v1}}
spec: {{address: 127.0.0.1, ports: {{tcp: {v1}}}, labels: {{app: tcp-echo, version: v1}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: tcp-echo-v2}}
spec: {{address: 127.0.0.1, ports: {{tcp: {v2}}}, labels: {{app: tcp-echo, version: v2}}}}
"""


def sample(name, gateway_port):
    """An Istio sample, unchanged but for its gateway port (31400) moved to a free one."""
    with open(os.path.join(SAMPLES, name)) as f:
        return f.read().replace("31400", str(gateway_port))


@needs_samples
def test_istio_tcp_echo_samples(mesh):
    v1, v2 = echo(mesh, "one"), echo(mesh, "two")
    gw_port = free_port()
    cp = ControlPlane(mesh, {"registry.yaml": REGISTRY.format(v1=v1, v2=v2),
                             "tcp-echo.yaml": sample("tcp-echo-all-v1.yaml", gw_port)})
    cp.start()
    gateway = cp.gateway()
    cp.wait_ready()
    wait_for_port(gw_port)
    assert Counter(exchange(gw_port, b"world") for _ in range(20)) == {b"one world\n": 20}

    # The control plane gives the gateway's TCP listener Istio's TCP stats.
    def closed_to_tcp_echo():
        text = http_get(f"http://127.0.0.1:{gateway.admin}/stats/prometheus")[1]
        return sum(int(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                   if l.startswith("istio_tcp_connections_closed_total{")
                   and 'destination_service="tcp-echo.default.svc.cluster.local"' in l and 'reporter="source"' in l)
    wait_until(lambda: closed_to_tcp_echo() >= 20, 10, what="gateway TCP metrics")

    cp.apply({"zz-tcp-echo-20-v2.yaml": sample("tcp-echo-20-v2.yaml", gw_port)})
    counts = Counter(exchange(gw_port).split(b" ")[0] for _ in range(300))
    assert set(counts) == {b"one", b"two"}, counts
    assert abs(counts[b"two"] / 300 - 0.20) <= 0.07, counts


# -- Istio's TCP metrics (istio.stats as a network filter)

TCP_FAMILIES = ["istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total",
                "istio_tcp_received_bytes_total", "istio_tcp_sent_bytes_total"]
ECHO_CLUSTER = "outbound|9000||tcp-echo.default.svc.cluster.local"


def tcp_metrics(proxy):
    return {name: proxy.stat(name) for name in TCP_FAMILIES}


def tcp_series(proxy, family):
    return [l for l in proxy.admin("/stats/prometheus")[1].splitlines() if l.startswith(family + "{")]


def test_istio_tcp_metrics_count_connections_and_bytes_exactly(mesh):
    up = echo(mesh, "one")
    port = free_port()
    stats = {"name": "istio.stats", "config": {"reporter": "source", "workload": {
        "name": "ingressgateway", "namespace": "istio-system", "labels": {"app": "istio-ingressgateway"}}}}
    proxy = tcp_proxy(mesh, tcp_config(port, [{"cluster": ECHO_CLUSTER}], {ECHO_CLUSTER: up}, networkFilters=[stats]))
    # The harness's readiness probe was one connection: wait until it is counted closed.
    wait_until(lambda: tcp_metrics(proxy)["istio_tcp_connections_closed_total"] == 1, 10, what="probe closed")
    before = tcp_metrics(proxy)
    for _ in range(3):
        conversation(port, [b"hello"])  # 6 bytes in; "one hello\n" + "one bye 6\n" = 20 out
    wait_until(lambda: tcp_metrics(proxy)["istio_tcp_connections_closed_total"] == before[TCP_FAMILIES[1]] + 3, 10,
               what="three connections closed")
    after = tcp_metrics(proxy)
    assert {k: after[k] - before[k] for k in TCP_FAMILIES} == {
        "istio_tcp_connections_opened_total": 3, "istio_tcp_connections_closed_total": 3,
        "istio_tcp_received_bytes_total": 3 * 6, "istio_tcp_sent_bytes_total": 3 * 20}
    # The same bytes as the proxy's own TCP counters.
    assert after["istio_tcp_received_bytes_total"] == proxy.stat("meshd_tcp_downstream_cx_rx_bytes_total")
    assert after["istio_tcp_sent_bytes_total"] == proxy.stat("meshd_tcp_downstream_cx_tx_bytes_total")

    [series] = tcp_series(proxy, "istio_tcp_connections_opened_total")
    for label in ['reporter="source"', 'source_workload="ingressgateway"', 'source_workload_namespace="istio-system"',
                  'source_app="istio-ingressgateway"', 'destination_service="tcp-echo.default.svc.cluster.local"',
                  'destination_service_name="tcp-echo"', 'destination_service_namespace="default"',
                  'request_protocol="tcp"', 'response_flags="-"', 'connection_security_policy="unknown"']:
        assert label in series, (label, series)
    assert "response_code" not in series and "grpc_response_status" not in series
    text = proxy.admin("/stats/prometheus")[1]
    assert "# TYPE istio_tcp_sent_bytes_total counter" in text
    assert "# HELP istio_tcp_sent_bytes_total Bytes sent" in text


def test_istio_tcp_metrics_flag_a_failed_upstream(mesh):
    port, dead = free_port(), free_port()
    stats = {"name": "istio.stats", "config": {"reporter": "source", "workload": {"name": "gw"}}}
    proxy = tcp_proxy(mesh, tcp_config(port, [{"cluster": "down"}], {"down": dead}, networkFilters=[stats]))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.settimeout(10)
        assert s.recv(10) == b""
    wait_until(lambda: any('response_flags="UF"' in l for l in tcp_series(proxy, "istio_tcp_connections_closed_total")),
               10, what="a UF connection counted")


# -- AuthorizationPolicy on TCP (Envoy's network RBAC as Istio builds it)


def tcp_policy(action, rules):
    return f"""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: tcp-echo-policy, namespace: istio-system}}
spec:
  selector: {{matchLabels: {{istio: ingressgateway}}}}
  action: {action}
  rules: {rules}
"""


def denied_total(gateway):
    text = http_get(f"http://127.0.0.1:{gateway.admin}/stats/prometheus")[1]
    return sum(int(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("meshd_rbac_tcp_denied_total{"))


@needs_samples
def test_authorization_policy_on_a_tcp_gateway(mesh):
    v1 = echo(mesh, "one")
    gw_port, other_port = free_port(), free_port()
    cp = ControlPlane(mesh, {"registry.yaml": REGISTRY.format(v1=v1, v2=v1),
                             "tcp-echo.yaml": sample("tcp-echo-all-v1.yaml", gw_port)})
    cp.start()
    gateway = cp.gateway()
    cp.wait_ready()
    wait_for_port(gw_port)
    assert exchange(gw_port) == b"one hello\n"
    cases = [
        # L4 fields: the client is 127.0.0.1 (peer and remote, a gateway trusts no hop).
        ("DENY", "[{from: [{source: {remoteIpBlocks: [127.0.0.1/32]}}]}]", False),
        ("DENY", "[{from: [{source: {ipBlocks: [127.0.0.1/32]}}]}]", False),
        ("DENY", "[{from: [{source: {ipBlocks: [10.0.0.0/8]}}]}]", True),
        ("ALLOW", f'[{{to: [{{operation: {{ports: ["{gw_port}"]}}}}]}}]', True),
        ("ALLOW", f'[{{to: [{{operation: {{ports: ["{other_port}"]}}}}]}}]', False),
        # No verified peer certificate on TCP: principals never match.
        ("ALLOW", '[{from: [{source: {principals: ["*"]}}]}]', False),
        # HTTP-only fields: ignored in a DENY rule (it denies more), drop an ALLOW rule.
        ("DENY", "[{to: [{operation: {methods: [GET]}}]}]", False),
        ("ALLOW", "[{to: [{operation: {methods: [GET]}}]}]", False),
        ("ALLOW", "[{}]", True),
    ]
    denied = 0
    for action, rules, echoes in cases:
        cp.apply({"zz-policy.yaml": tcp_policy(action, rules)})
        if echoes:
            assert exchange(gw_port) == b"one hello\n", (action, rules)
        else:
            assert closed_without_reply(gw_port), (action, rules)
            denied += 1
            wait_until(lambda: denied_total(gateway) == denied, 10, what=f"denial {denied} counted")
    # `spec: {}` denies everything; removing the policy lets traffic through again.
    cp.apply({"zz-policy.yaml": "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                                "metadata: {name: deny-all, namespace: istio-system}\nspec: {}\n"})
    assert closed_without_reply(gw_port)
    before = cp.syncz()
    cp.remove("zz-policy.yaml")
    cp.wait_synced(changed_from=before)
    assert exchange(gw_port) == b"one hello\n"
