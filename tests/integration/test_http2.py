"""HTTP/2 downstream (h2c prior knowledge and ALPN h2 over TLS), HTTP/2 upstream, and gRPC end to end."""
import hashlib
import json
import os
import subprocess
import sys

import grpc
import pytest

from certs import make_certs
from conftest import curl, free_port, simple_config, wait_for_port

HERE = os.path.dirname(os.path.abspath(__file__))


def test_h2c_prior_knowledge_and_http11_on_one_port(mesh, tmp_path):
    up = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up))
    r = curl("--http2-prior-knowledge", "-w", "\n%{http_version}", f"http://127.0.0.1:{port}/h2?x=1")
    body, version = r.stdout.decode().rsplit("\n", 1)
    assert version == "2"
    assert json.loads(body)["path"] == "/h2?x=1"
    # A 5 MiB upload is echoed back intact over h2c.
    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(5 << 20))
    r = curl("--http2-prior-knowledge", "--data-binary", f"@{blob}", f"http://127.0.0.1:{port}/echo")
    assert hashlib.sha256(r.stdout).hexdigest() == hashlib.sha256(blob.read_bytes()).hexdigest()
    assert curl("--http1.1", "-o", "/dev/null", "-w", "%{http_version}", f"http://127.0.0.1:{port}/").stdout == b"1.1"
    assert '"GET /h2?x=1 HTTP/2" 200' in "\n".join(proxy.access_log(wait_lines=3))


def test_h2_over_tls_with_alpn(mesh, tmp_path):
    certs = make_certs(str(tmp_path))
    up = mesh.upstream("app")
    port = free_port()
    mesh.proxy(simple_config(port, up, listener_extra={"tls": {"certificateChain": certs["cert"], "privateKey": certs["key"]}}))
    r = curl("--http2", "--cacert", certs["ca"], "-w", "\n%{http_version}", f"https://localhost:{port}/tls")
    body, version = r.stdout.decode().rsplit("\n", 1)
    assert version == "2", r.stderr
    assert json.loads(body)["headers"]["x-forwarded-proto"] == "https"


def test_nghttp_and_h2load(mesh):
    up = mesh.upstream("app")
    port = free_port()
    mesh.proxy(simple_config(port, up))
    r = subprocess.run(["nghttp", "-v", f"http://127.0.0.1:{port}/status/204"], capture_output=True, timeout=30)
    assert b":status: 204" in r.stdout
    r = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "10", f"http://127.0.0.1:{port}/"],
                       capture_output=True, timeout=120)
    out = r.stdout.decode()
    assert "2000 succeeded, 0 failed, 0 errored" in out, out


def grpc_setup(mesh):
    backend = free_port()
    mesh.start([sys.executable, os.path.join(HERE, "grpc_peer.py"), str(backend)], "grpc-server")
    wait_for_port(backend)
    port = free_port()
    proxy = mesh.proxy(simple_config(port, backend, clusters=[
        {"name": "app", "protocol": "HTTP2", "endpoints": [{"address": "127.0.0.1", "port": backend}]}]))
    return proxy, port


def test_grpc_unary_and_streaming_through_the_proxy(mesh):
    proxy, port = grpc_setup(mesh)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        echo = channel.unary_unary("/meshd.test.Echo/Echo")
        response, call = echo.with_call(b"hello", timeout=10)
        assert response == b"echo:hello"
        assert ("x-trailer", "yes") in call.trailing_metadata()
        with pytest.raises(grpc.RpcError) as failure:
            channel.unary_unary("/meshd.test.Echo/Fail")(b"x", timeout=10)
        assert failure.value.code() == grpc.StatusCode.NOT_FOUND
        assert failure.value.details() == "no such thing"
        chat = channel.stream_stream("/meshd.test.Echo/Chat")
        replies = list(chat(iter([b"a", b"b", b"c"] * 100), timeout=20))
        assert len(replies) == 300
        assert replies[0] == b"0:a" and replies[299] == b"299:c"
    assert proxy.stat('meshd_upstream_rq_completed_total{cluster="app",response_code="200"}') == 3


def test_http11_client_to_http2_upstream(mesh):
    """An HTTP/1.1 client reaches an h2c upstream (another meshd listener) through an HTTP2 cluster."""
    up = mesh.upstream("app")
    back, front = free_port(), free_port()
    mesh.proxy(simple_config(back, up))
    mesh.proxy(simple_config(front, 0, clusters=[
        {"name": "app", "protocol": "HTTP2", "endpoints": [{"address": "127.0.0.1", "port": back}]}]))
    for i in range(20):
        r = curl("--http1.1", f"http://127.0.0.1:{front}/n{i}")
        assert json.loads(r.stdout)["path"] == f"/n{i}"
    r = curl("--http1.1", "-o", "/dev/null", "-w", "%{size_download}", f"http://127.0.0.1:{front}/bytes/3000000")
    assert r.stdout == b"3000000"
