"""Istio's "Egress Gateways" task, as its docs write it: a ServiceEntry for an external host,
a Gateway on the egress gateway, a DestinationRule for the gateway's subset and a
VirtualService sending `mesh` traffic to the egress gateway and the gateway's traffic to the
external host. The external host is a local HTTP server: its ServiceEntry resolves by DNS the
name `localhost` (never the internet); the egress gateway's Kubernetes Service is a
ServiceEntry with the gateway's address."""
from conftest import free_port
from mesh_harness import Client, ControlPlane, LoopbackHTTP, http_get, wait_until, write_mesh_config

EXTERNAL = "edition.example.test"
EGRESS = "istio-egressgateway.istio-system.svc.cluster.local"


def external_service(external_port):
    return f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: external}}
spec:
  hosts: [{EXTERNAL}]
  ports: [{{number: 80, name: http-port, protocol: HTTP}}]
  resolution: DNS
  endpoints: [{{address: localhost, ports: {{http-port: {external_port}}}}}]
"""


def egress_gateway_service(gateway_port):
    return f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: istio-egressgateway, namespace: istio-system}}
spec:
  hosts: [{EGRESS}]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {gateway_port}}}}}]
"""


def gateway(gateway_port):
    return f"""
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: istio-egressgateway}}
spec:
  selector: {{istio: egressgateway}}
  servers:
  - port: {{number: {gateway_port}, name: http, protocol: HTTP}}
    hosts: [{EXTERNAL}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: egressgateway-for-external}}
spec:
  host: {EGRESS}
  subsets: [{{name: external}}]
"""


def through_egress_gateway(gateway_port):
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: direct-external-through-egress-gateway}}
spec:
  hosts: [{EXTERNAL}]
  gateways: [istio-egressgateway, mesh]
  http:
  - match: [{{gateways: [mesh], port: 80}}]
    route:
    - destination: {{host: {EGRESS}, subset: external, port: {{number: 80}}}}
      weight: 100
  - match: [{{gateways: [istio-egressgateway], port: {gateway_port}}}]
    route:
    - destination: {{host: {EXTERNAL}, port: {{number: 80}}}}
      weight: 100
"""


def upstream_requests(proxy, cluster):
    """Responses `proxy` received from `cluster` (meshd_upstream_rq_total, all codes)."""
    text = http_get(f"http://127.0.0.1:{proxy.admin}/stats/prometheus")[1]
    total = 0
    for line in text.splitlines():
        if line.startswith("meshd_upstream_rq_total{") and f'cluster="{cluster}"' in line:
            total += int(line.rsplit(" ", 1)[1])
    return total


def test_egress_gateway_pattern_from_istios_docs(mesh):
    seen = []

    def answer(method, path, headers):
        seen.append(headers)
        return 200, {"x-external": "yes"}, f"external {path}".encode()

    external = LoopbackHTTP(answer).start()
    try:
        run(mesh, external, seen)
    finally:
        external.stop()


def run(mesh, external, seen):
    gateway_port = free_port()
    cp = ControlPlane(mesh, {"external.yaml": external_service(external.port),
                             "egress-service.yaml": egress_gateway_service(gateway_port),
                             "gateway.yaml": gateway(gateway_port)})
    # Istio's task reads the egress gateway's access log: Envoy's access log on stdout.
    cp.start(extra_args=["--mesh-config", write_mesh_config(cp, "accessLogFile: /dev/stdout\n")])
    sleep = cp.sidecar("sleep", with_app=False)
    egress = cp.gateway(name="istio-egressgateway", labels="istio=egressgateway",
                        extra_args=["--namespace", "istio-system"])
    egress.id = "gateway~127.0.0.1~istio-egressgateway.istio-system"
    cp.wait_ready()
    to_external = f"outbound|80||{EXTERNAL}"
    to_gateway = f"outbound|80|external|{EGRESS}"
    client = Client(sleep.outbound)

    # Without the VirtualService the sidecar goes to the external host itself.
    status, headers, body = client.get(EXTERNAL, "/politics")
    assert status == 200 and body == b"external /politics", (status, body)
    assert upstream_requests(egress, to_external) == 0
    assert upstream_requests(sleep, to_external) == 1

    # With it, the request leaves the mesh through the egress gateway.
    cp.apply({"vs.yaml": through_egress_gateway(gateway_port)})
    for i in range(3):
        status, headers, body = client.get(EXTERNAL, f"/politics/{i}")
        assert status == 200 and body == f"external /politics/{i}".encode(), (status, headers, body)
    assert upstream_requests(sleep, to_gateway) == 3
    assert upstream_requests(egress, to_external) == 3
    assert upstream_requests(sleep, to_external) == 1
    # The external server saw the gateway's hop: the Host kept, the client's address forwarded.
    assert seen[-1]["host"].split(":")[0] == EXTERNAL, seen[-1]
    assert "x-forwarded-for" in seen[-1], seen[-1]

    # The gateway's access log (Istio's format) names the external host's cluster for each request.
    def logged():
        lines = [l for l in egress.process.stdout().splitlines() if to_external in l and '"GET /politics/' in l]
        return lines if len(lines) == 3 else None
    wait_until(logged, 10, what="three egress gateway access-log lines")
