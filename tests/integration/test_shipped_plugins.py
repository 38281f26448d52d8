"""The Lua plugins in plugins/, each loaded into a real `meshd proxy` (meshd.lua filter with the
file's text as inlineCode) in front of `meshd demo-app`, driven with curl."""
import base64
import json
import os
import re
import subprocess
import time

import pytest

from conftest import ROOT, curl, free_port, simple_config

PLUGINS = os.path.join(ROOT, "plugins")


def plugin_filter(name, plugin_config=None, **extra):
    with open(os.path.join(PLUGINS, f"{name}.lua")) as f:
        code = f.read()
    config = {"name": name, "inlineCode": code}
    if plugin_config is not None:
        config["pluginConfig"] = plugin_config
    config.update(extra)
    return {"name": "meshd.lua", "config": config}


def start(mesh, name, plugin_config=None, routes=None, clusters=None, **extra):
    up = mesh.upstream("app")
    port = free_port()
    cfg = simple_config(port, up, routes=routes, clusters=clusters,
                        filters=[plugin_filter(name, plugin_config, **extra)])
    proxy = mesh.proxy(cfg)
    return port, proxy


def get(port, path="/", *headers, method=None, data=None):
    """(status, headers dict (last value wins, lowercase names), body bytes)."""
    args = ["-i"]
    for h in headers:
        args += ["-H", h]
    if method:
        args += ["-X", method]
    if data is not None:
        args += ["--data-binary", data]
    r = curl(*args, f"http://127.0.0.1:{port}{path}")
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


def echoed(body):
    return json.loads(body)["headers"]


# ---- header-rewrite ----

def test_header_rewrite_sets_adds_and_removes_both_ways(mesh):
    port, _ = start(mesh, "header-rewrite", {
        "request": {"set": {"x-env": "prod", "x-num": 7}, "add": {"x-via": ["meshd", "edge"]},
                    "remove": ["x-debug"]},
        "response": {"set": {"cache-control": "no-store"}, "add": {"x-served-by": "meshd"},
                     "remove": ["x-service"]},
    })
    status, hdrs, body = get(port, "/", "x-debug: 1", "x-env: dev", "x-keep: yes")
    assert status == 200
    seen = echoed(body)
    assert seen["x-env"] == "prod"
    assert seen["x-num"] == "7"
    assert "x-debug" not in seen
    assert seen["x-keep"] == "yes"
    # demo-app echoes one (sorted) entry per header line.
    assert b'"x-via": "meshd"' in body and b'"x-via": "edge"' in body
    assert hdrs["cache-control"] == "no-store"
    assert hdrs["x-served-by"] == "meshd"
    assert "x-service" not in hdrs
    r = curl("-s", "-o", "/dev/null", "-D", "-", "-H", "x-debug: 1", f"http://127.0.0.1:{port}/status/204")
    assert b"cache-control: no-store" in r.stdout.lower()


def test_header_rewrite_sets_authority(mesh):
    port, _ = start(mesh, "header-rewrite", {"request": {"set": {":authority": "backend.internal"}}})
    _, _, body = get(port, "/")
    assert echoed(body)["host"] == "backend.internal"


# ---- api-key ----

API_KEYS = {
    "keys": {
        "k-alice-7f3a": {"client": "alice", "requests": 3, "windowSeconds": 3600},
        "k-bob-91c2": "bob",
    },
}


def test_api_key_rejects_missing_and_unknown_keys(mesh):
    port, _ = start(mesh, "api-key", API_KEYS)
    for headers in ([], ["x-api-key: wrong"], ["x-api-key: "]):
        status, hdrs, body = get(port, "/", *headers)
        assert status == 401, headers
        assert body == b'{"error":"missing or invalid api key"}'
        assert hdrs["content-type"] == "application/json"


def test_api_key_without_keys_fails_closed(mesh):
    port, proxy = start(mesh, "api-key", {"rateLimit": {"requests": 1}})
    status, _, body = get(port, "/", "x-api-key: anything")
    assert status == 500
    assert json.loads(body) == {"error": "api-key plugin is misconfigured"}
    assert "bad pluginConfig" in proxy.process.stderr()


def test_api_key_forwards_client_and_hides_key(mesh):
    port, _ = start(mesh, "api-key", API_KEYS)
    status, hdrs, body = get(port, "/", "x-api-key: k-bob-91c2", "x-api-client: forged")
    assert status == 200
    seen = echoed(body)
    assert seen["x-api-client"] == "bob"
    assert "x-api-key" not in seen
    # bob has no rate limit: no rate-limit headers.
    assert "x-ratelimit-limit" not in hdrs


def test_api_key_rate_limit_per_key_across_event_loops(mesh):
    port, proxy = start(mesh, "api-key", API_KEYS)
    remaining = []
    for _ in range(3):  # a new connection each time: requests land on both event loops
        status, hdrs, _ = get(port, "/", "x-api-key: k-alice-7f3a")
        assert status == 200
        assert hdrs["x-ratelimit-limit"] == "3"
        remaining.append(hdrs["x-ratelimit-remaining"])
    assert remaining == ["2", "1", "0"]
    status, hdrs, body = get(port, "/", "x-api-key: k-alice-7f3a")
    assert status == 429
    assert body == b'{"error":"rate limit exceeded"}'
    assert 1 <= int(hdrs["retry-after"]) <= 3600
    # Another key has its own budget.
    assert get(port, "/", "x-api-key: k-bob-91c2")[0] == 200
    assert proxy.stat('meshd_lua_errors_total{plugin="api-key"}') == 0


def test_api_key_short_window_resets(mesh):
    port, _ = start(mesh, "api-key", {"keys": {"k1": "one"}, "rateLimit": {"requests": 1, "windowSeconds": 1}})
    # Windows are fixed (aligned to the clock) and a request may take a while on a busy
    # machine, so two requests may straddle a boundary: send until the budget runs out.
    codes = [get(port, "/", "x-api-key: k1")[0]]
    while codes[-1] == 200 and len(codes) < 6:
        codes.append(get(port, "/", "x-api-key: k1")[0])
    assert codes[0] == 200 and codes[-1] == 429, codes
    refused = time.time()
    # The next window lets one through again (within a window and some slack).
    while get(port, "/", "x-api-key: k1")[0] != 200:
        assert time.time() - refused < 3, "the window did not reset"
        time.sleep(0.05)


# ---- canary-cookie ----

def canary_config(port, stable, canary):
    return {
        "listeners": [{"name": "main", "address": "127.0.0.1", "port": port, "routeConfig": "main",
                       "httpFilters": [plugin_filter("canary-cookie")]}],
        "routeConfigs": [{"name": "main", "virtualHosts": [{"name": "app", "domains": ["*"], "routes": [
            {"name": "canary", "match": {"prefix": "/", "headers": [{"name": "x-canary", "exact": "1"}]},
             "route": {"cluster": "canary"}},
            {"name": "stable", "match": {"prefix": "/"}, "route": {"cluster": "stable"}}]}]}],
        "clusters": [{"name": "stable", "endpoints": [{"address": "127.0.0.1", "port": stable}]},
                     {"name": "canary", "endpoints": [{"address": "127.0.0.1", "port": canary}]}],
    }


def test_canary_cookie_sets_header_upstream(mesh):
    port, _ = start(mesh, "canary-cookie")
    seen = echoed(get(port, "/", "Cookie: theme=dark; canary=always")[2])
    assert seen["x-canary"] == "1"
    seen = echoed(get(port, "/", "Cookie: canary=never")[2])
    assert "x-canary" not in seen
    # Only the plugin decides: a client's own x-canary is dropped.
    seen = echoed(get(port, "/", "x-canary: 1")[2])
    assert "x-canary" not in seen


def test_canary_cookie_custom_cookie(mesh):
    port, _ = start(mesh, "canary-cookie", {"cookie": "beta", "value": "yes", "header": "x-track",
                                            "headerValue": "beta"})
    assert echoed(get(port, "/", "Cookie: beta=yes")[2])["x-track"] == "beta"
    assert "x-track" not in echoed(get(port, "/", "Cookie: canary=always")[2])


def test_canary_cookie_reroutes_to_canary_cluster(mesh):
    stable, canary = mesh.upstream("stable"), mesh.upstream("canary")
    port = free_port()
    mesh.proxy(canary_config(port, stable, canary))
    assert json.loads(get(port, "/")[2])["service"] == "stable"
    assert json.loads(get(port, "/", "Cookie: canary=always")[2])["service"] == "canary"


# ---- json-redact ----

def test_json_redact_replaces_fields_and_fixes_length(mesh):
    port, _ = start(mesh, "json-redact", {"fields": ["password", "SSN"],
                                          "contentTypes": ["json", "octet-stream"]})
    # demo-app's / answers JSON that echoes the request headers (one level down).
    status, hdrs, body = get(port, "/", "password: hunter2", "x-other: keep")
    assert status == 200
    seen = json.loads(body)
    assert seen["headers"]["password"] == "[redacted]"
    assert seen["headers"]["x-other"] == "keep"
    assert seen["service"] == "app"
    assert int(hdrs["content-length"]) == len(body)
    # /echo sends the request body back (application/octet-stream, listed above): nested and in arrays.
    doc = {"user": {"name": "ann", "Password": "p", "ids": [{"ssn": "123"}, {"ok": 1}]}, "n": None}
    status, hdrs, body = get(port, "/echo", "content-type: application/json", data=json.dumps(doc))
    assert status == 200
    out = json.loads(body)
    assert out == {"user": {"name": "ann", "Password": "[redacted]", "ids": [{"ssn": "[redacted]"}, {"ok": 1}]},
                   "n": None}
    assert int(hdrs["content-length"]) == len(body)


def test_json_redact_passes_other_bodies_unchanged(mesh):
    port, _ = start(mesh, "json-redact", {"fields": ["password"], "contentTypes": ["json", "octet-stream"]})
    # Not JSON: byte for byte.
    text = b'{"password": "x" this is not json'
    status, _, body = get(port, "/echo", data=text)
    assert status == 200 and body == text
    # JSON without the fields: untouched layout.
    raw = b'{ "a" : [1, 2],   "b": "c" }'
    assert get(port, "/echo", data=raw)[2] == raw
    # A content type that is not inspected (text/plain).
    assert get(port, "/sink", data="password")[2] == b"8\n"


def test_json_redact_default_types_skip_octet_stream(mesh):
    port, _ = start(mesh, "json-redact", {"fields": ["password"]})
    raw = b'{"password": "x"}'
    assert get(port, "/echo", data=raw)[2] == raw
    assert echoed(get(port, "/", "password: x")[2])["password"] == "[redacted]"


# ---- log-sampler ----

def sampled_lines(proxy, want, timeout=5):
    deadline = time.time() + timeout
    while True:
        lines = [l for l in proxy.process.stderr().splitlines() if "sampled request" in l]
        if len(lines) >= want or time.time() > deadline:
            return lines
        time.sleep(0.05)


def test_log_sampler_rate_one_logs_every_request(mesh):
    port, proxy = start(mesh, "log-sampler", {"rate": 1, "headers": ["user-agent"]})
    for path in ("/a", "/status/404", "/delay/50"):
        get(port, path, "User-Agent: sampler test")
    lines = sampled_lines(proxy, 3)
    assert len(lines) == 3, proxy.process.stderr()
    by_path = {re.search(r"path=(\S+)", l).group(1): l for l in lines}
    assert set(by_path) == {"/a", "/status/404", "/delay/50"}
    assert "method=GET" in by_path["/a"] and "status=200" in by_path["/a"]
    assert "status=404" in by_path["/status/404"]
    assert 'user-agent="sampler test"' in by_path["/a"]
    assert "info" in by_path["/a"] and "plugin=log-sampler" in by_path["/a"]
    assert float(re.search(r"duration_ms=([0-9.]+)", by_path["/delay/50"]).group(1)) >= 50
    assert re.search(r"request_id=[0-9a-f-]{36}", by_path["/a"])


def test_log_sampler_rate_zero_logs_nothing(mesh):
    port, proxy = start(mesh, "log-sampler", {"rate": 0})
    for _ in range(5):
        assert get(port, "/")[0] == 200
    time.sleep(0.3)
    assert sampled_lines(proxy, 1, timeout=0.5) == []
    assert proxy.stat('meshd_lua_executions_total{plugin="log-sampler"}') >= 5


# ---- jwt-claims ----

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def rsa_key(tmp_path):
    key = tmp_path / "key.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)],
                   check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return key, base64.b64encode(der).decode()


def make_token(key, claims, header=None):
    header = header or {"alg": "RS256", "typ": "JWT"}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key)], input=signing_input.encode(),
                         check=True, capture_output=True).stdout
    return signing_input + "." + b64url(sig)


def test_jwt_claims_valid_token_copies_claims(mesh, rsa_key):
    key, public = rsa_key
    port, proxy = start(mesh, "jwt-claims", {
        "publicKey": public, "issuer": "https://issuer.test", "audience": "orders",
        "claims": {"sub": "x-jwt-sub", "email": "x-jwt-email", "admin": "x-jwt-admin", "roles": "x-jwt-roles"},
    })
    now = int(time.time())
    token = make_token(key, {"sub": "user-42", "email": "u@example.com", "admin": False, "roles": ["a", "b"],
                             "iss": "https://issuer.test", "aud": ["orders", "other"], "exp": now + 600})
    status, _, body = get(port, "/", f"Authorization: Bearer {token}", "x-jwt-sub: forged", "x-jwt-email: forged")
    assert status == 200, body
    seen = echoed(body)
    assert seen["x-jwt-sub"] == "user-42"
    assert seen["x-jwt-email"] == "u@example.com"
    assert seen["x-jwt-admin"] == "false"
    assert json.loads(seen["x-jwt-roles"]) == ["a", "b"]
    assert seen["authorization"] == f"Bearer {token}"
    assert proxy.stat('meshd_lua_errors_total{plugin="jwt-claims"}') == 0


def test_jwt_claims_rejects_bad_tokens(mesh, rsa_key, tmp_path):
    key, public = rsa_key
    port, _ = start(mesh, "jwt-claims", {"publicKey": public, "claims": {"sub": "x-jwt-sub"}})
    now = int(time.time())
    good = make_token(key, {"sub": "u", "exp": now + 600})
    h, p, s = good.split(".")
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(other)],
                   check=True, capture_output=True)
    cases = {
        "missing bearer token": [],
        "malformed token": ["Authorization: Bearer not-a-jwt"],
        "token expired": [f"Authorization: Bearer {make_token(key, {'sub': 'u', 'exp': now - 10})}"],
        "token has no exp": [f"Authorization: Bearer {make_token(key, {'sub': 'u'})}"],
        "invalid signature": [f"Authorization: Bearer {h}.{b64url(json.dumps({'sub': 'admin', 'exp': now + 600}).encode())}.{s}",
                              f"Authorization: Bearer {make_token(other, {'sub': 'u', 'exp': now + 600})}"],
        "unsupported algorithm": [
            f"Authorization: Bearer {make_token(key, {'sub': 'u', 'exp': now + 600}, {'alg': 'RS512'})}"],
    }
    for reason, header_sets in cases.items():
        for headers in (header_sets or [None]):
            status, hdrs, body = get(port, "/", *([headers] if headers else []))
            assert status == 401, (reason, body)
            assert json.loads(body) == {"error": reason}
            assert hdrs["www-authenticate"].startswith("Bearer")
    # alg "none" with an empty signature is refused too.
    none = b64url(json.dumps({"alg": "none"}).encode()) + "." + p + "."
    assert get(port, "/", f"Authorization: Bearer {none}")[0] == 401
    assert get(port, "/", f"Authorization: Bearer {good}")[0] == 200
