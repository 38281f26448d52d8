"""Gateway TLS from the secret store outside Kubernetes: `<config dir>/<credentialName>/` holds
tls.crt / tls.key / ca.crt (or Istio's generic names cert / key / cacert); the control plane
pushes them to the gateway, which picks each server's certificate by SNI, verifies client
certificates in MUTUAL, applies the protocol range, and serves a rotated secret from the next
connection on without a restart."""
import hashlib
import os
import shutil
import socket
import ssl
import time

import pytest

from certs import make_ca, make_leaf
from conftest import curl, free_port
from mesh_harness import ControlPlane, wait_until


def gateway_yaml(port, a_tls, b_tls):
    return f"""
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: web}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: https-a, protocol: HTTPS}}
    hosts: [a.example.com]
    tls: {a_tls}
  - port: {{number: {port}, name: https-b, protocol: HTTPS}}
    hosts: [b.example.com]
    tls: {b_tls}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web}}
spec:
  hosts: [a.example.com, b.example.com]
  gateways: [web]
  http:
  - directResponse: {{status: 200, body: {{string: "hello over tls"}}}}
"""


def install_secret(config_dir, name, files):
    """Writes a secret directory, each file by an atomic rename (`files`: key name -> source path)."""
    d = os.path.join(config_dir, name)
    os.makedirs(d, exist_ok=True)
    for key, source in files.items():
        shutil.copyfile(source, os.path.join(d, key + ".tmp"))
        os.replace(os.path.join(d, key + ".tmp"), os.path.join(d, key))


def fetch(port, server_name, ca, client=None, max_version=None, timeout=10):
    """GET / over TLS with SNI `server_name` (verified against `ca`); returns (status line,
    body, SHA-256 of the server's certificate). Raises when the handshake or the exchange fails."""
    ctx = ssl.create_default_context(cafile=ca)
    if client:
        ctx.load_cert_chain(*client)
    if max_version:
        ctx.maximum_version = max_version
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as s:
            der = s.getpeercert(binary_form=True)
            s.sendall(f"GET / HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    if not data:
        raise ConnectionError("connection closed without an answer")
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), body.decode(), hashlib.sha256(der).hexdigest()


def refused(*args, **kw):
    try:
        fetch(*args, **kw)
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    return False


@pytest.fixture
def pki(tmp_path):
    d = str(tmp_path)
    ca = make_ca(d, "ca")
    other = make_ca(d, "other-ca")
    return {
        "dir": d, "ca": ca, "other": other,
        "a": make_leaf(d, ca, "a.example.com", ["DNS:a.example.com"]),
        "b": make_leaf(d, ca, "b.example.com", ["DNS:b.example.com"], key_type="rsa"),
        "client": make_leaf(d, ca, "client", ["URI:spiffe://example.com/client"]),
        "stranger": make_leaf(d, other, "stranger", ["URI:spiffe://example.com/client"]),
    }


def serve(mesh, pki, a_tls, b_tls, secrets):
    """A control plane with the two-server Gateway on a free port and `secrets` (name -> {key
    name: source file}) in its config directory, and a gateway serving it. Returns (cp, port)
    once host a answers over TLS."""
    port = free_port()
    cp = ControlPlane(mesh, {"gateway.yaml": gateway_yaml(port, a_tls, b_tls)})
    for name, files in secrets.items():
        install_secret(cp.config_dir, name, files)
    cp.start()
    cp.gateway()
    cp.wait_ready(timeout=60)
    wait_until(lambda: not refused(port, "a.example.com", pki["ca"][0]), timeout=30, what="gateway serving TLS")
    return cp, port


def tls_secret(leaf, ca=None):
    files = {"tls.crt": leaf[0], "tls.key": leaf[1]}
    if ca:
        files["ca.crt"] = ca
    return files


def test_two_hosts_on_one_port_each_get_their_certificate_by_sni(mesh, pki):
    # cred-b uses Istio's generic secret names.
    cp, port = serve(mesh, pki, "{mode: SIMPLE, credentialName: cred-a}", "{mode: SIMPLE, credentialName: cred-b}",
                     {"cred-a": tls_secret(pki["a"]), "cred-b": {"cert": pki["b"][0], "key": pki["b"][1]}})
    ca = pki["ca"][0]
    # The hostname check of each handshake proves the certificate is that host's.
    status, body, a_hash = fetch(port, "a.example.com", ca)
    assert status == "HTTP/1.1 200 OK" and body == "hello over tls", (status, body)
    status, body, b_hash = fetch(port, "b.example.com", ca)
    assert status == "HTTP/1.1 200 OK" and body == "hello over tls", (status, body)
    assert a_hash != b_hash
    # curl with SNI over HTTP/2: ALPN is the SNI entry's.
    for host in ("a.example.com", "b.example.com"):
        r = curl("-sS", "--http2", "--cacert", ca, "--resolve", f"{host}:{port}:127.0.0.1",
                 "-w", "\n%{http_version}", f"https://{host}:{port}/")
        assert r.stdout.decode().splitlines() == ["hello over tls", "2"], (r.stdout, r.stderr)
    # Envoy's filter-chain match: a name no server has, or no SNI, matches no chain: refused.
    assert refused(port, "c.example.com", ca)
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
                if not s.recv(1024):
                    raise ConnectionError("closed")


def test_mutual_requires_a_client_certificate_from_the_ca(mesh, pki):
    # The client CA in Istio's `<credentialName>-cacert` secret.
    cp, port = serve(mesh, pki, "{mode: SIMPLE, credentialName: cred-a}",
                     "{mode: MUTUAL, credentialName: cred-b, subjectAltNames: [spiffe://example.com/client]}",
                     {"cred-a": tls_secret(pki["a"]), "cred-b": tls_secret(pki["b"]), "cred-b-cacert": {"ca.crt": pki["ca"][0]}})
    ca = pki["ca"][0]
    status, body, _ = fetch(port, "b.example.com", ca, client=pki["client"])
    assert status == "HTTP/1.1 200 OK", status
    assert refused(port, "b.example.com", ca)  # no certificate
    assert refused(port, "b.example.com", ca, client=pki["stranger"])  # another CA
    # The SIMPLE host on the same port asks for none.
    assert fetch(port, "a.example.com", ca)[0] == "HTTP/1.1 200 OK"


def test_client_certificate_san_must_match(mesh, pki):
    cp, port = serve(mesh, pki, "{mode: SIMPLE, credentialName: cred-a}",
                     "{mode: MUTUAL, credentialName: cred-b, subjectAltNames: [spiffe://example.com/someone-else]}",
                     {"cred-a": tls_secret(pki["a"]), "cred-b": tls_secret(pki["b"], ca=pki["ca"][0])})
    assert refused(port, "b.example.com", pki["ca"][0], client=pki["client"])


def test_min_protocol_version_tls13_refuses_a_tls12_client(mesh, pki):
    cp, port = serve(mesh, pki, "{mode: SIMPLE, credentialName: cred-a, minProtocolVersion: TLSV1_3}",
                     "{mode: SIMPLE, credentialName: cred-b, maxProtocolVersion: TLSV1_2}",
                     {"cred-a": tls_secret(pki["a"]), "cred-b": tls_secret(pki["b"])})
    ca = pki["ca"][0]
    assert refused(port, "a.example.com", ca, max_version=ssl.TLSVersion.TLSv1_2)
    assert fetch(port, "b.example.com", ca, max_version=ssl.TLSVersion.TLSv1_2)[0] == "HTTP/1.1 200 OK"
    # The other server's range is its own: b tops out at TLS 1.2.
    ctx = ssl.create_default_context(cafile=ca)
    for name, version in (("b.example.com", "TLSv1.2"), ("a.example.com", "TLSv1.3")):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=name) as s:
                assert s.version() == version, name


def test_rotated_secret_is_served_without_restart_or_failed_request(mesh, pki):
    cp, port = serve(mesh, pki, "{mode: SIMPLE, credentialName: cred-a}", "{mode: SIMPLE, credentialName: cred-b}",
                     {"cred-a": tls_secret(pki["a"]), "cred-b": tls_secret(pki["b"])})
    ca = pki["ca"][0]
    gateway_pid = cp.proxies[0].process.proc.pid
    before = fetch(port, "a.example.com", ca)[2]
    renewed_dir = os.path.join(pki["dir"], "renewed")
    os.makedirs(renewed_dir)
    renewed = make_leaf(renewed_dir, pki["ca"], "a.example.com", ["DNS:a.example.com"])
    # The key first, then the certificate: in between the pair does not match, and the
    # control plane keeps serving the last good one.
    install_secret(cp.config_dir, "cred-a", {"tls.key": renewed[1]})
    install_secret(cp.config_dir, "cred-a", {"tls.crt": renewed[0]})
    expected = hashlib.sha256(ssl.PEM_cert_to_DER_cert(open(renewed[0]).read())).hexdigest()
    deadline = time.time() + 30
    served, requests = before, 0
    while served != expected and time.time() < deadline and requests < 3000:
        status, body, served = fetch(port, "a.example.com", ca)  # a failure raises: none allowed
        assert status == "HTTP/1.1 200 OK", status
        assert served in (before, expected)
        requests += 1
    assert served == expected, f"still the old certificate after {requests} requests"
    print(f"renewed certificate served after {requests} requests, {time.time() - (deadline - 30):.2f}s")
    assert cp.proxies[0].process.proc.pid == gateway_pid and cp.proxies[0].running()


def test_missing_secret_is_reported_with_its_field(mesh, pki):
    cp, port = serve(mesh, pki, "{mode: SIMPLE, credentialName: cred-a}", "{mode: SIMPLE, credentialName: nowhere}",
                     {"cred-a": tls_secret(pki["a"])})
    warnings = wait_until(lambda: [w for w in cp.config_status()["warnings"] if "nowhere" in w], timeout=20,
                          what="missing-secret warning")
    assert any("gateway.yaml:" in w and "spec.servers[1].tls.credentialName" in w and "not found" in w
               for w in warnings), warnings
    # The other server is unaffected; b has no certificate.
    assert fetch(port, "a.example.com", pki["ca"][0])[0] == "HTTP/1.1 200 OK"
    assert refused(port, "b.example.com", pki["ca"][0])
