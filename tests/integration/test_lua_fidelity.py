"""Envoy's documented Lua behaviours in a real `meshd proxy`, driven by real clients: reason
phrases, a body made for a response without one (HTTP/1.1 and HTTP/2), respond() after the
headers went on, drainConnectionUponCompletion, require of the plugin's own modules, and the
peer certificate facts over mutual TLS."""
import http.client
import json
import os
import socket
import subprocess
import time

import pytest

from certs import make_certs
from conftest import curl, free_port, simple_config


def lua_proxy(mesh, code, port=None, listener_extra=None, **plugin):
    """A proxy on a free port with one Lua plugin (`luaPlugins`) in front of a demo upstream."""
    up = mesh.upstream("app")
    port = port or free_port()
    config = simple_config(port, up, listener_extra=listener_extra)
    config["luaPlugins"] = [dict({"name": "fidelity", "inlineCode": code}, **plugin)]
    return mesh.proxy(config), port


def get(port, path="/", method="GET", body=None, headers=None, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.reason, {k.lower(): v for k, v in r.getheaders()}, r.read().decode(errors="replace")
    finally:
        conn.close()


def read_until_closed(port, data, timeout=5.0):
    """Sends `data` on a keep-alive connection; returns (everything read, whether the server closed)."""
    deadline = time.time() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while time.time() < deadline:
            s.settimeout(max(0.05, deadline - time.time()))
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                return b"".join(chunks), True
            chunks.append(b)
        return b"".join(chunks), False


def test_reason_phrase_reaches_the_http11_status_line(mesh):
    _, port = lua_proxy(mesh, """
function envoy_on_response(h)
  h:headers():replace(":status", "429")
  h:headers():setHttp1ReasonPhrase("Slow Down")
end
""")
    status, reason, _, _ = get(port)
    assert (status, reason) == (429, "Slow Down")


def test_body_made_for_a_response_without_one_reaches_http11_and_http2_clients(mesh):
    _, port = lua_proxy(mesh, """
function envoy_on_response(h)
  h:body(true):setBytes("ok")
end
""")
    # /status/200 answers content-length: 0, so the response headers end the stream.
    status, _, headers, body = get(port, "/status/200")
    assert (status, body, headers.get("content-length")) == (200, "ok", "2")
    r = curl("--http2-prior-knowledge", "-D", "-", f"http://127.0.0.1:{port}/status/200", timeout=10)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert out.startswith("HTTP/2 200") and out.endswith("\r\n\r\nok"), out


def test_respond_inside_body_chunks_raises_and_the_request_is_proxied(mesh):
    proxy, port = lua_proxy(mesh, """
function envoy_on_request(h)
  for chunk in h:bodyChunks() do
    h:respond({[":status"] = "403"}, "nope")
  end
end
""")
    status, _, _, body = get(port, "/echo", method="POST", body="hello upstream")
    assert (status, body) == (200, "hello upstream")
    deadline = time.time() + 5
    while proxy.stat("meshd_lua_errors_total") < 1 and time.time() < deadline:
        time.sleep(0.05)
    assert proxy.stat("meshd_lua_errors_total") == 1
    assert "respond() cannot be called if headers have been continued" in proxy.process.stderr()


def test_drain_connection_upon_completion_closes_the_http11_connection(mesh):
    _, port = lua_proxy(mesh, """
function envoy_on_request(h)
  if h:headers():get("x-drain") then h:streamInfo():drainConnectionUponCompletion() end
end
""")
    data, closed = read_until_closed(port, b"GET / HTTP/1.1\r\nHost: a\r\nx-drain: 1\r\n\r\n")
    head = data.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert head.startswith("http/1.1 200") and "connection: close" in head, head
    assert closed, "the connection stayed open"
    # Without the call the connection is kept alive.
    data, closed = read_until_closed(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", timeout=1.0)
    assert data.startswith(b"HTTP/1.1 200") and not closed


def test_require_loads_the_plugins_own_modules(mesh):
    _, port = lua_proxy(mesh, """
local tag = require("lib.tag")
function envoy_on_request(h)
  h:headers():add("x-tag", tag.value())
  local ok, err = pcall(require, "io")
  h:headers():add("x-io", tostring(ok))
end
""", modules={"lib.tag": "local M = {}\nfunction M.value() return 'from-module' end\nreturn M\n"})
    status, _, _, body = get(port)
    assert status == 200, body
    seen = json.loads(body)["headers"]
    assert seen["x-tag"] == "from-module" and seen["x-io"] == "false"


@pytest.fixture
def mtls(tmp_path):
    certs = make_certs(str(tmp_path))

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=str(tmp_path))

    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/O=acme/CN=client",
        "-keyout", "client.key", "-out", "client.csr")
    (tmp_path / "client.cnf").write_text("subjectAltName=URI:spiffe://cluster.local/ns/default/sa/client\n")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "client.cnf", "-out", "client.pem")

    def fact(*args):
        out = subprocess.run(["openssl", "x509", "-in", "client.pem", "-noout", *args], check=True,
                             capture_output=True, text=True, cwd=str(tmp_path)).stdout.strip()
        return out.split("=", 1)[1]

    certs.update(client_cert=str(tmp_path / "client.pem"), client_key=str(tmp_path / "client.key"),
                 digest=fact("-fingerprint", "-sha256").replace(":", "").lower(),
                 serial=fact("-serial").lower().lstrip("0") or "0",
                 subject=fact("-subject", "-nameopt", "RFC2253"))
    return certs


def test_peer_certificate_facts_over_mutual_tls(mesh, mtls):
    tls = {"tls": {"certificateChain": mtls["cert"], "privateKey": mtls["key"], "caCertificates": mtls["ca"]}}
    _, port = lua_proxy(mesh, """
function envoy_on_request(h)
  local ssl = h:streamInfo():downstreamSslConnection()
  local hd = h:headers()
  hd:add("x-presented", tostring(ssl:peerCertificatePresented()))
  hd:add("x-validated", tostring(ssl:peerCertificateValidated()))
  hd:add("x-uri-san", table.concat(ssl:uriSanPeerCertificate(), ","))
  hd:add("x-subject", ssl:subjectPeerCertificate())
  hd:add("x-digest", ssl:sha256PeerCertificateDigest())
  hd:add("x-serial", ssl:serialNumberPeerCertificate())
  hd:add("x-cn", ssl:parsedSubjectPeerCertificate():commonName())
  hd:add("x-version", ssl:tlsVersion())
  hd:add("x-local-dns", table.concat(h:connection():ssl():dnsSansLocalCertificate(), ","))
  hd:add("x-pem-start", ssl:urlEncodedPemEncodedPeerCertificate():sub(1, 32))
end
""", listener_extra=tls)
    r = curl("--http1.1", "--cacert", mtls["ca"], "--cert", mtls["client_cert"], "--key", mtls["client_key"],
             f"https://localhost:{port}/", timeout=10)
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)["headers"]
    assert seen["x-presented"] == "true" and seen["x-validated"] == "true"
    assert seen["x-uri-san"] == "spiffe://cluster.local/ns/default/sa/client"
    assert seen["x-subject"] == mtls["subject"] == "CN=client,O=acme"
    assert seen["x-digest"] == mtls["digest"]
    # Envoy prints the serial byte by byte (BN_bn2hex, lower-cased): a leading zero nibble stays.
    assert int(seen["x-serial"], 16) == int(mtls["serial"], 16) and len(seen["x-serial"]) % 2 == 0, seen["x-serial"]
    assert seen["x-cn"] == "client"
    assert seen["x-version"].startswith("TLSv1.")
    assert seen["x-local-dns"] == "localhost"
    assert seen["x-pem-start"] == "-----BEGIN%20CERTIFICATE-----%0A"


def test_route_and_virtual_host_metadata_from_their_config(mesh):
    up = mesh.upstream("app")
    port = free_port()
    config = simple_config(port, up, routes=[
        {"name": "orders", "match": {"prefix": "/orders"}, "route": {"cluster": "app"},
         "perFilterConfig": {"fidelity": {"metadata": {"team": "payments", "tier": 1}}}},
        {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "app"}}])
    config["routeConfigs"][0]["virtualHosts"][0]["perFilterConfig"] = {"meshd.lua": {"metadata": {"zone": "eu"}}}
    config["luaPlugins"] = [{"name": "fidelity", "inlineCode": """
function envoy_on_request(h)
  local r, v = h:route():metadata(), h:virtualHost():metadata()
  h:headers():add("x-route", tostring(r:get("team")) .. "/" .. tostring(r:get("tier")))
  h:headers():add("x-vhost", tostring(v:get("zone")))
end
"""}]
    mesh.proxy(config)
    _, _, _, body = get(port, "/orders/7")
    seen = json.loads(body)["headers"]
    assert (seen["x-route"], seen["x-vhost"]) == ("payments/1", "eu")
    _, _, _, body = get(port, "/")
    seen = json.loads(body)["headers"]
    assert (seen["x-route"], seen["x-vhost"]) == ("nil/nil", "eu")
