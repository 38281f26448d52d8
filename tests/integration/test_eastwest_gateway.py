"""Istio's multi-network mesh through an east-west gateway: the Gateway of Istio's
samples/multicluster/expose-services.yaml (`tls.mode: AUTO_PASSTHROUGH`) on a gateway of
network2, whose Service is a ServiceEntry labelled `topology.istio.io/network: network2`.
A sidecar on network1 reaches `reviews` on network2 through the gateway's address; its mTLS
goes end to end (the gateway routes on the SNI, `outbound_.9080_._.reviews...`, and never
terminates it): the reviews sidecar sees the caller's own SPIFFE identity."""
import json
import socket
import ssl

from conftest import free_port
from mesh_harness import Client, ControlPlane, get_json, service_entry, wait_until
from test_identity import token

REVIEWS = "reviews.default.svc.cluster.local"
SNI = f"outbound_.9080_._.{REVIEWS}"


def eastwest(port):
    return f"""
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: cross-network-gateway, namespace: istio-system}}
spec:
  selector: {{istio: eastwestgateway}}
  servers:
  - port: {{number: {port}, name: tls, protocol: TLS}}
    tls: {{mode: AUTO_PASSTHROUGH}}
    hosts: ["*.local"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: istio-eastwestgateway
  namespace: istio-system
  labels: {{topology.istio.io/network: network2}}
spec:
  hosts: [istio-eastwestgateway.istio-system.svc.cluster.local]
  ports: [{{number: 15443, name: tls, protocol: TLS}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{tls: {port}}}}}]
"""


POLICIES = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-viewer, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules: [{from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"]}}]}]
"""


def on(network, labels):
    return ["--labels", f"{labels},topology.istio.io/network={network}"]


def mesh_client(cp, name, network):
    return cp.sidecar(name, with_app=False, extra_args=["--service-account", name, "--token-file",
                                                        token(cp, "default", name, name),
                                                        *on(network, f"app={name},version=v1")])


def tls_handshake(port, server_name):
    """Whether a TLS handshake with SNI `server_name` through the gateway completes."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=server_name):
                return True
    except (OSError, ssl.SSLError):
        return False


def tcp_stat(proxy, name):
    text = Client(proxy.admin).get("admin", "/stats/prometheus")[2].decode()
    return sum(int(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_a_sidecar_reaches_another_network_through_an_auto_passthrough_gateway(mesh):
    gateway_port = free_port()
    cp = ControlPlane(mesh, {"services.yaml": service_entry("reviews"), "eastwest.yaml": eastwest(gateway_port),
                             "policies.yaml": POLICIES}).start()
    reviews = cp.sidecar("reviews", extra_args=["--service-account", "reviews", "--token-file",
                                                token(cp, "default", "reviews", "reviews"),
                                                *on("network2", "app=reviews,version=v1")])
    sleep = mesh_client(cp, "sleep", "network1")
    other = mesh_client(cp, "other", "network1")
    gateway = cp.gateway(name="istio-eastwestgateway", labels="istio=eastwestgateway,topology.istio.io/network=network2",
                         extra_args=["--namespace", "istio-system"])
    gateway.id = "gateway~127.0.0.1~istio-eastwestgateway.istio-system"
    cp.wait_ready(timeout=60)

    # network1 knows reviews only through network2's gateway, with the workload's identity.
    clusters = {c["name"]: c for c in get_json(f"http://127.0.0.1:{sleep.admin}/config_dump?resource=clusters")["configs"]}
    endpoints = clusters[f"outbound|9080||{REVIEWS}"]["endpoints"]
    assert endpoints == [{"address": "127.0.0.1", "port": gateway_port,
                          "meshIdentity": "spiffe://cluster.local/ns/default/sa/reviews"}], endpoints

    client = Client(sleep.outbound, timeout=10)
    try:
        # Certificates arrive over the discovery stream: wait for the first mutual-TLS answer.
        wait_until(lambda: client.get(REVIEWS)[0] == 200, 30, what="sleep reaches reviews through the gateway")
        status, headers, body = client.get(REVIEWS)
        assert status == 200 and headers["x-service"] == "reviews-v1", (status, body)
        xfcc = json.loads(body)["headers"]["x-forwarded-client-cert"]
        assert xfcc.endswith(";URI=spiffe://cluster.local/ns/default/sa/sleep"), xfcc
    finally:
        client.close()
    assert tcp_stat(gateway, f'meshd_tcp_upstream_cx_total{{cluster="{SNI}"}}') >= 1

    # The reviews sidecar authorizes the caller's identity, not the gateway's.
    status, _, body = Client(other.outbound, timeout=10).get(REVIEWS)
    assert (status, body) == (403, b"RBAC: access denied"), (status, body)

    # An SNI naming no mesh service, or none at all, gets its connection closed.
    before = tcp_stat(gateway, "meshd_tcp_no_route_total")
    assert not tls_handshake(gateway_port, "outbound_.9080_._.nothing.default.svc.cluster.local")
    assert not tls_handshake(gateway_port, None)
    assert tcp_stat(gateway, "meshd_tcp_no_route_total") == before + 2
