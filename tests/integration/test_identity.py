"""Mesh identity: the control plane's CA, bootstrap tokens, SPIFFE certificates issued over the
discovery stream, automatic mTLS between sidecars, PeerAuthentication STRICT / PERMISSIVE, and
certificate rotation under load."""
import datetime
import os
import socket
import ssl
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import MESHD, raw_request
import json

from mesh_harness import Client, ControlPlane, Load, get_json, http_get, service_entry, tally, wait_until

SERVICES = service_entry("reviews") + "---" + service_entry("productpage")
STRICT = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
"""
REVIEWS = "reviews.default.svc.cluster.local:9080"


def token(cp, namespace, sa, name):
    r = subprocess.run([MESHD, "control-plane", "token", "--config-dir", cp.config_dir, "--namespace", namespace,
                        "--service-account", sa], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    path = os.path.join(cp.mesh.workdir, f"{name}.token")
    with open(path, "w") as f:
        f.write(r.stdout)
    return path


def state_dir(cp):
    return cp.config_dir + ".state"


def mesh_sidecar(cp, app, sa=None, extra=()):
    return cp.sidecar(app, extra_args=["--service-account", sa or app, "--token-file", token(cp, "default", sa or app, app),
                                       *extra])


def certs(proxy):
    return get_json(f"http://127.0.0.1:{proxy.admin}/certs")["certificates"]


def client_cert(cp, uri, days_valid=1, not_before_days=-1, key_file=None, cert_file=None, signer=None):
    """A client certificate signed by the mesh CA (or `signer`: (cert, key)) for `uri`, as files."""
    if signer is None:
        ca_dir = os.path.join(state_dir(cp), "ca")
        with open(os.path.join(ca_dir, "ca-cert.pem"), "rb") as f:
            ca_cert = x509.load_pem_x509_certificate(f.read())
        with open(os.path.join(ca_dir, "ca-key.pem"), "rb") as f:
            ca_key = serialization.load_pem_private_key(f.read(), None)
    else:
        ca_cert, ca_key = signer
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=not_before_days))
            .not_valid_after(now + datetime.timedelta(days=days_valid))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=True)
            .sign(ca_key, hashes.SHA256()))
    base = os.path.join(cp.mesh.workdir, f"client-{abs(hash((uri, days_valid, not_before_days, id(signer))))}")
    with open(base + ".key", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with open(base + ".crt", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return base + ".crt", base + ".key"


def other_root():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "other.example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=10))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    return cert, key


def tls_get(port, cert=None, key=None, timeout=5):
    """GET / over TLS to a sidecar's inbound port: (peer certificate DER, response bytes or the error)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw) as s:
            der = s.getpeercert(binary_form=True)
            try:
                s.sendall(b"GET / HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except (ssl.SSLError, OSError) as e:
                return der, repr(e)
            return der, data


def spiffe_uris(der):
    cert = x509.load_der_x509_certificate(der)
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier)


def test_strict_mtls_between_sidecars_refuses_plaintext_and_foreign_certificates(mesh):
    cp = ControlPlane(mesh, {"services.yaml": SERVICES, "peer.yaml": STRICT}).start()
    reviews = mesh_sidecar(cp, "reviews")
    # This one fetches its config (and certificate) over the TLS discovery port, verified with the root.
    tls_port = cp.discovery_port  # replaced below once the control plane has a TLS port
    productpage = mesh_sidecar(cp, "productpage")
    cp.wait_ready()

    # Sidecar to sidecar: mutual TLS with no DestinationRule (STRICT accepts nothing else).
    assert tally(productpage.outbound, REVIEWS, 5) == {"reviews-v1": 5}
    # The app behind the inbound sidecar is told who called (Istio's XFCC); a client's own is dropped.
    status, _, body = Client(productpage.outbound).get(REVIEWS, headers={"x-forwarded-client-cert": "URI=spiffe://forged"})
    assert status == 200
    xfcc = json.loads(body)["headers"]["x-forwarded-client-cert"]
    assert xfcc.startswith("By=spiffe://cluster.local/ns/default/sa/reviews;Hash="), xfcc
    assert xfcc.endswith(";URI=spiffe://cluster.local/ns/default/sa/productpage"), xfcc

    # Plaintext to the STRICT inbound port: closed before any HTTP is spoken.
    answer = raw_request(reviews.inbound, b"GET / HTTP/1.1\r\nHost: reviews\r\n\r\n", timeout=5)
    assert not answer.startswith(b"HTTP/"), answer[:200]

    # TLS without a client certificate: the server shows its SPIFFE certificate, then refuses.
    der, result = tls_get(reviews.inbound)
    assert spiffe_uris(der) == ["spiffe://cluster.local/ns/default/sa/reviews"]
    assert not (isinstance(result, bytes) and result.startswith(b"HTTP/")), result

    # A mesh certificate: accepted.
    cert, key = client_cert(cp, "spiffe://cluster.local/ns/default/sa/sleep")
    _, result = tls_get(reviews.inbound, cert, key)
    assert isinstance(result, bytes) and result.startswith(b"HTTP/1.1 200"), result

    # Expired, or from another root (another trust domain's CA): refused in the handshake.
    expired = client_cert(cp, "spiffe://cluster.local/ns/default/sa/sleep", days_valid=-1, not_before_days=-2)
    foreign = client_cert(cp, "spiffe://other.example/ns/default/sa/sleep", signer=other_root())
    for cert, key in [expired, foreign]:
        try:
            _, result = tls_get(reviews.inbound, cert, key)
        except (ssl.SSLError, OSError) as e:
            result = repr(e)
        assert not (isinstance(result, bytes) and result.startswith(b"HTTP/")), result

    # proxy-config secret: the identity, serial, validity and the root's fingerprint.
    out = cp.meshd("proxy-config", "secret", reviews.name)
    rows = out.splitlines()
    assert rows[0].split()[:3] == ["RESOURCE", "NAME", "IDENTITY"]
    assert "spiffe://cluster.local/ns/default/sa/reviews" in out and "ROOTCA" in out
    root_sha = certs(reviews)[0]["rootSHA256"]
    assert root_sha in out and certs(productpage)[0]["rootSHA256"] == root_sha


def test_permissive_accepts_mtls_and_plaintext_on_one_port(mesh):
    cp = ControlPlane(mesh, {"services.yaml": SERVICES}).start()  # no PeerAuthentication: PERMISSIVE
    reviews = mesh_sidecar(cp, "reviews")
    productpage = mesh_sidecar(cp, "productpage")
    cp.wait_ready()
    assert tally(productpage.outbound, REVIEWS, 5) == {"reviews-v1": 5}
    status, _, body = Client(reviews.inbound).get("reviews", headers={"x-forwarded-client-cert": "URI=spiffe://forged"})
    assert status == 200, body
    assert "x-forwarded-client-cert" not in json.loads(body)["headers"]  # plaintext: no peer, and no forgery
    cert, key = client_cert(cp, "spiffe://cluster.local/ns/default/sa/sleep")
    der, result = tls_get(reviews.inbound, cert, key)
    assert spiffe_uris(der) == ["spiffe://cluster.local/ns/default/sa/reviews"]
    assert isinstance(result, bytes) and result.startswith(b"HTTP/1.1 200"), result

    # Switching the mesh to STRICT closes the plaintext door without a restart.
    cp.apply({"peer.yaml": STRICT})
    answer = raw_request(reviews.inbound, b"GET / HTTP/1.1\r\nHost: reviews\r\n\r\n", timeout=5)
    assert not answer.startswith(b"HTTP/"), answer[:200]
    assert tally(productpage.outbound, REVIEWS, 3) == {"reviews-v1": 3}


def test_certificate_for_another_identity_is_refused(mesh):
    cp = ControlPlane(mesh, {"services.yaml": SERVICES}).start()
    # A token for "reviews", presented by a proxy that registers as "admin".
    impostor = cp.sidecar("reviews", extra_args=["--service-account", "admin",
                                                 "--token-file", token(cp, "default", "reviews", "impostor")])
    wait_until(lambda: "refused certificate request" in cp.process.stderr(), 20, what="the refusal logged")
    log = cp.process.stderr()
    assert "registered as ns/default/sa/admin" in log, log[-2000:]
    # It gets its config, but stays not ready: it has no identity to serve with.
    def refusal_shown():
        status, body = http_get(f"http://127.0.0.1:{impostor.health}/healthz/ready")
        return status == 503 and "no workload certificate" in body and "refused" in body
    wait_until(refusal_shown, 20, what="readiness names the refused certificate")


def test_tls_discovery_port_is_served_by_the_mesh_ca(mesh):
    cp = ControlPlane(mesh, {"services.yaml": SERVICES})
    from conftest import free_port, wait_for_port
    tls_port = free_port()
    cp.start(extra_args=["--tls-port", str(tls_port)])
    wait_for_port(tls_port)
    root = os.path.join(state_dir(cp), "ca", "ca-cert.pem")
    reviews = cp.sidecar("reviews", extra_args=["--control-plane", f"127.0.0.1:{tls_port}", "--control-plane-ca", root,
                                                "--service-account", "reviews",
                                                "--token-file", token(cp, "default", "reviews", "reviews")])
    cp.wait_ready()
    assert certs(reviews)[0]["identity"] == "spiffe://cluster.local/ns/default/sa/reviews"


def test_rotation_under_load_drops_nothing(mesh):
    cp = ControlPlane(mesh, {"services.yaml": SERVICES, "peer.yaml": STRICT}).start()
    # 6-second certificates: each sidecar rotates about every 3 seconds.
    reviews = mesh_sidecar(cp, "reviews", extra=["--cert-ttl-seconds", "6"])
    productpage = mesh_sidecar(cp, "productpage", extra=["--cert-ttl-seconds", "6"])
    cp.wait_ready()
    first = {p.name: certs(p)[0]["generation"] for p in (reviews, productpage)}
    with Load(productpage.outbound, REVIEWS, threads=2, max_seconds=40) as load:
        load.wait_requests(20, timeout=20)
        # Three rotations on both sides while requests flow (new connections use the new certificates).
        wait_until(lambda: all(certs(p)[0]["generation"] >= first[p.name] + 3 for p in (reviews, productpage)),
                   timeout=35, interval=0.2, what="three rotations on both sidecars")
        load.stop()
    results = load.snapshot()
    assert len(results) > 50
    assert load.failures() == [], load.failures()[:5]
    # A fresh connection after the rotations still works (new certificate on both ends).
    assert tally(productpage.outbound, REVIEWS, 3) == {"reviews-v1": 3}


def gateway_yaml(port):
    return f"""
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: ingress}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: http, protocol: HTTP}}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: ingress}}
spec:
  hosts: ["*"]
  gateways: [ingress]
  http:
  - route:
    - destination: {{host: reviews, port: {{number: 9080}}}}
"""


def destination_rule(tls):
    return f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec: {{host: reviews, trafficPolicy: {{tls: {tls}}}}}
"""


def test_gateway_to_strict_sidecar_and_destination_rule_tls_modes(mesh):
    from conftest import free_port, wait_for_port
    port = free_port()
    cp = ControlPlane(mesh, {"services.yaml": SERVICES, "peer.yaml": STRICT, "gateway.yaml": gateway_yaml(port)}).start()
    mesh_sidecar(cp, "reviews")
    gw = cp.gateway(extra_args=["--service-account", "istio-ingressgateway",
                                "--token-file", token(cp, "default", "istio-ingressgateway", "gateway")])
    cp.wait_ready()
    wait_for_port(port)
    assert tally(port, "anything", 3) == {"reviews-v1": 3}  # auto mTLS from the gateway
    assert certs(gw)[0]["identity"] == "spiffe://cluster.local/ns/default/sa/istio-ingressgateway"

    # ISTIO_MUTUAL with the right SPIFFE ID: mTLS; with another one: the handshake is refused (503).
    cp.apply({"dr.yaml": destination_rule('{mode: ISTIO_MUTUAL, subjectAltNames: ["spiffe://cluster.local/ns/default/sa/reviews"]}')})
    assert tally(port, "anything", 3) == {"reviews-v1": 3}
    cp.apply({"dr.yaml": destination_rule('{mode: ISTIO_MUTUAL, subjectAltNames: ["spiffe://cluster.local/ns/default/sa/other"]}')})
    status, headers, body = Client(port).get("anything")
    # The client reads Envoy's short text; why the handshake failed is in the gateway's access log.
    assert (status, body) == (503, b"upstream connect error or disconnect/reset before headers. "
                                   b"reset reason: connection failure"), (status, body)
    wait_until(lambda: any(" 503 " in l and "TLS error" in l and "match none of" in l
                           for l in gw.process.stdout().splitlines()), 5, what="TLS failure reason logged")
    # DISABLE: plaintext, which the STRICT sidecar closes (meshd's router answers a connection
    # closed before response headers with 502; Envoy would say 503 UC).
    cp.apply({"dr.yaml": destination_rule("{mode: DISABLE}")})
    counts = tally(port, "anything", 3)
    assert set(counts) <= {"status 502: ", "status 503: "} and len(set(counts)) == 1, counts
    # Back to auto mTLS.
    cp.apply({"dr.yaml": destination_rule("{}")})
    assert tally(port, "anything", 3) == {"reviews-v1": 3}


def test_gateway_istio_mutual_server_requires_a_mesh_client_certificate(mesh):
    from conftest import free_port, wait_for_port
    port = free_port()
    gateway = gateway_yaml(port).replace("{number: %d, name: http, protocol: HTTP}" % port,
                                         "{number: %d, name: https, protocol: HTTPS}\n    tls: {mode: ISTIO_MUTUAL}" % port)
    assert "ISTIO_MUTUAL" in gateway
    cp = ControlPlane(mesh, {"services.yaml": SERVICES, "gateway.yaml": gateway}).start()
    mesh_sidecar(cp, "reviews")
    cp.gateway(extra_args=["--service-account", "istio-ingressgateway",
                           "--token-file", token(cp, "default", "istio-ingressgateway", "gateway")])
    cp.wait_ready()
    wait_for_port(port)
    cert, key = client_cert(cp, "spiffe://cluster.local/ns/default/sa/sleep")
    der, result = tls_get(port, cert, key)
    assert spiffe_uris(der) == ["spiffe://cluster.local/ns/default/sa/istio-ingressgateway"]
    assert isinstance(result, bytes) and result.startswith(b"HTTP/1.1 200"), result
    _, result = tls_get(port)  # no client certificate
    assert not (isinstance(result, bytes) and result.startswith(b"HTTP/")), result


def test_a_destination_under_peer_authentication_disable_is_reached_in_plaintext(mesh):
    """Auto mTLS sends plaintext to a workload whose PeerAuthentication is DISABLE (it would
    refuse TLS), as Istio does; the app sees no client certificate."""
    disable = STRICT.replace("STRICT", "DISABLE")
    cp = ControlPlane(mesh, {"services.yaml": SERVICES, "peer.yaml": disable}).start()
    mesh_sidecar(cp, "reviews")
    productpage = mesh_sidecar(cp, "productpage")
    cp.wait_ready()
    status, _, body = Client(productpage.outbound).get(REVIEWS)
    assert status == 200, body
    assert "x-forwarded-client-cert" not in json.loads(body)["headers"]
