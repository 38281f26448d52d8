"""`--mesh-config`: Istio's MeshConfig read by the control plane (trust domain, root
namespace), watched for changes, refused with file and line when it cannot be used, and
checked by `meshd validate`."""
import json
import os
import subprocess

from conftest import MESHD, raw_request
from mesh_harness import Client, ControlPlane, http_get, service_entry, tally, wait_until, write_mesh_config

SERVICES = service_entry("reviews") + "---" + service_entry("productpage")
REVIEWS = "reviews.default.svc.cluster.local:9080"


def strict_in(namespace):
    return f"""
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: {namespace}}}
spec: {{mtls: {{mode: STRICT}}}}
"""


def mesh_sidecar(cp, app, mesh_config):
    r = subprocess.run([MESHD, "control-plane", "token", "--config-dir", cp.config_dir, "--mesh-config", mesh_config,
                        "--namespace", "default", "--service-account", app], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    token = os.path.join(cp.mesh.workdir, f"{app}.token")
    with open(token, "w") as f:
        f.write(r.stdout)
    return cp.sidecar(app, extra_args=["--service-account", app, "--token-file", token])


def plaintext_answers(port):
    return raw_request(port, b"GET / HTTP/1.1\r\nHost: reviews\r\n\r\n", timeout=5).startswith(b"HTTP/1.1 200")


def test_trust_domain_and_root_namespace_come_from_the_mesh_config(mesh):
    cp = ControlPlane(mesh, {"services.yaml": SERVICES, "peer.yaml": strict_in("mesh-root")})
    path = write_mesh_config(cp, "trustDomain: example.org\nrootNamespace: mesh-root\n")
    cp.start(extra_args=["--mesh-config", path])
    reviews = mesh_sidecar(cp, "reviews", path)
    productpage = mesh_sidecar(cp, "productpage", path)
    cp.wait_ready()

    # Identities are in the mesh config's trust domain, end to end.
    certs = json.loads(http_get(f"http://127.0.0.1:{reviews.admin}/certs")[1])["certificates"]
    assert certs[0]["identity"] == "spiffe://example.org/ns/default/sa/reviews", certs
    status, _, body = Client(productpage.outbound).get(REVIEWS)
    assert status == 200, body
    xfcc = json.loads(body)["headers"]["x-forwarded-client-cert"]
    assert xfcc.endswith(";URI=spiffe://example.org/ns/default/sa/productpage"), xfcc

    # mesh-root is the root namespace: its PeerAuthentication is mesh-wide, so plaintext is refused.
    assert not plaintext_answers(reviews.inbound)

    # The file is watched: with Istio's default root back, that policy is an ordinary namespace's.
    before = cp.syncz()
    version = cp.config_status()["configVersion"]
    write_mesh_config(cp, "trustDomain: example.org\n")
    wait_until(lambda: cp.config_status()["configVersion"] > version, 10, what="the mesh config reloaded")
    cp.wait_synced(changed_from=before)
    assert plaintext_answers(reviews.inbound)
    assert tally(productpage.outbound, REVIEWS, 3) == {"reviews-v1": 3}


def test_a_mesh_config_that_cannot_be_used_is_refused_with_its_line(mesh):
    cp = ControlPlane(mesh, {"services.yaml": SERVICES})
    path = write_mesh_config(cp, "rootNamespace: mesh-root\noutboundTrafficPolicy:\n  mode: SOMETIMES\n")
    r = subprocess.run([MESHD, "control-plane", "--config-dir", cp.config_dir, "--mesh-config", path,
                        "--discovery-port", "0", "--status-port", "0"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r
    assert f"{path}:3: MeshConfig: outboundTrafficPolicy.mode: unknown value \"SOMETIMES\"" in r.stderr, r.stderr

    # While running, a bad edit is refused and the last good mesh config stays.
    write_mesh_config(cp, "rootNamespace: mesh-root\n")
    cp.start(extra_args=["--mesh-config", path])
    version = cp.config_status()["configVersion"]
    write_mesh_config(cp, "rootNamespace: mesh-root\nenableTracing: maybe\n")

    def refused():
        return any(f"{path}:2: MeshConfig: enableTracing" in e for e in cp.config_status()["refused"])
    wait_until(refused, 10, what="the bad mesh config refused")
    status = cp.config_status()
    assert status["configVersion"] == version
    assert not any("enableTracing" in w for w in status["warnings"]), "a refused file's fields are not warned"
    assert http_get(f"http://127.0.0.1:{cp.status_port}/ready")[0] == 200


def test_validate_checks_a_mesh_config_and_warns_what_meshd_does_not_do(tmp_path):
    mesh_config = tmp_path / "mesh.yaml"
    mesh_config.write_text("trustDomain: cluster.local\ndefaultConfig:\n  concurrency: 2\n")
    resource = tmp_path / "se.yaml"
    resource.write_text(service_entry("reviews"))
    r = subprocess.run([MESHD, "validate", "-f", str(resource), "--mesh-config", str(mesh_config)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    # defaultConfig.tracing.sampling is enforced, so defaultConfig's other fields are warned one by one.
    assert f"{mesh_config}:3: warning: MeshConfig: defaultConfig.concurrency: proxy defaults are set per proxy" in r.stderr, r.stderr
    r = subprocess.run([MESHD, "validate", "-f", str(resource), "--mesh-config", str(mesh_config), "--strict"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    mesh_config.write_text("trustDomin: x\n")
    r = subprocess.run([MESHD, "validate", "-f", str(resource), "--mesh-config", str(mesh_config)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert f'{mesh_config}:1: MeshConfig: trustDomin: unknown field "trustDomin" (did you mean "trustDomain"?)' in r.stderr


def test_outbound_traffic_policy_allow_any_then_registry_only(mesh):
    external = mesh.upstream("external")  # a server no ServiceEntry names
    cp = ControlPlane(mesh, {"services.yaml": SERVICES})
    path = write_mesh_config(cp, "{}\n")
    cp.start(extra_args=["--mesh-config", path])
    sleep = cp.sidecar("sleep", with_app=False)
    cp.wait_ready()
    c = Client(sleep.outbound)

    # ALLOW_ANY (Istio's default): the request goes to the address it names, with no timeout.
    status, headers, body = c.get(f"127.0.0.1:{external}", "/x")
    assert status == 200, body
    assert b'"service": "external"' in body, body

    # REGISTRY_ONLY: Istio's block_all answers 502; services in the registry still work.
    before = cp.syncz()
    write_mesh_config(cp, "outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n")
    cp.wait_synced(changed_from=before)
    status, _, body = c.get(f"127.0.0.1:{external}", "/x")
    assert status == 502, body
    reviews = cp.sidecar("reviews")
    cp.wait_ready()
    assert tally(sleep.outbound, REVIEWS, 3) == {"reviews-v1": 3}
