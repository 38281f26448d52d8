"""TLS downstream and upstream through OpenSSL."""
import json

import pytest

from certs import make_certs
from conftest import curl, free_port, simple_config


@pytest.fixture
def certs(tmp_path):
    return make_certs(str(tmp_path))


def tls_listener(certs):
    return {"tls": {"certificateChain": certs["cert"], "privateKey": certs["key"]}}


def test_https_http11_both_tls_versions(mesh, certs):
    up = mesh.upstream("app")
    port = free_port()
    mesh.proxy(simple_config(port, up, listener_extra=tls_listener(certs)))
    for extra in (["--tlsv1.2", "--tls-max", "1.2"], ["--tlsv1.3"]):
        r = curl("--http1.1", "--cacert", certs["ca"], *extra, "-w", "\n%{http_version} %{http_code}",
                 f"https://localhost:{port}/hello")
        body, status = r.stdout.decode().rsplit("\n", 1)
        assert status == "1.1 200", r.stderr
        seen = json.loads(body)
        assert seen["headers"]["x-forwarded-proto"] == "https"


def test_plaintext_to_tls_listener_is_refused_and_listener_keeps_serving(mesh, certs):
    up = mesh.upstream("app")
    port = free_port()
    mesh.proxy(simple_config(port, up, listener_extra=tls_listener(certs)))
    assert curl(f"http://127.0.0.1:{port}/", timeout=5).returncode != 0
    r = curl("--cacert", certs["ca"], "-o", "/dev/null", "-w", "%{http_code}", f"https://localhost:{port}/")
    assert r.stdout == b"200"


def test_upstream_tls_cluster(mesh, certs):
    """Proxy B reaches the app through proxy A's TLS listener, verifying it with the test CA."""
    up = mesh.upstream("app")
    front, back = free_port(), free_port()
    mesh.proxy(simple_config(back, up, listener_extra=tls_listener(certs)))
    mesh.proxy(simple_config(front, 0, clusters=[{"name": "app", "tls": {"sni": "localhost", "caCertificates": certs["ca"]},
                                                  "endpoints": [{"address": "127.0.0.1", "port": back}]}]))
    r = curl("-w", "\n%{http_code}", f"http://127.0.0.1:{front}/via-tls")
    body, code = r.stdout.decode().rsplit("\n", 1)
    assert code == "200"
    assert json.loads(body)["headers"]["x-forwarded-proto"] == "https"


def test_upstream_tls_wrong_name_fails_verification(mesh, certs):
    up = mesh.upstream("app")
    front, back = free_port(), free_port()
    mesh.proxy(simple_config(back, up, listener_extra=tls_listener(certs)))
    proxy = mesh.proxy(simple_config(front, 0, clusters=[{"name": "app", "tls": {"sni": "wrong.example", "caCertificates": certs["ca"]},
                                                          "endpoints": [{"address": "127.0.0.1", "port": back}]}]))
    r = curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{front}/")
    assert r.stdout in (b"502", b"503")
    assert proxy.access_log(wait_lines=1)
