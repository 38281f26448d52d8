"""AuthorizationPolicy CUSTOM with an `envoyExtAuthzHttp` provider from the mesh config:
Istio's "External Authorization" task, with a small authorizer here that behaves like Istio's
ext-authz sample (allow when `x-ext-authz: allow`, else 403 with a header and a body)."""
import json

from mesh_harness import Client, ControlPlane, LoopbackHTTP, service_entry, wait_until, write_mesh_config

DENY_BODY = "denied by ext_authz for not found header `x-ext-authz: allow` in the request"


class Authorizer(LoopbackHTTP):
    """Istio's ext-authz sample over plain HTTP, on loopback; records the checks it gets."""

    def __init__(self):
        super().__init__(self.check)
        self.checks = []

    def check(self, method, path, headers):
        self.checks.append((method, path, headers))
        if headers.get("x-ext-authz") == "allow":
            return 200, {"x-ext-authz-check-result": "allowed", "x-user": "alice"}, b""
        return 403, {"x-ext-authz-check-result": "denied", "x-internal": "secret"}, DENY_BODY.encode()


def authorizer_entry(port):
    return f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ext-authz, namespace: default}}
spec:
  hosts: [ext-authz.default.svc.cluster.local]
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1}}]
"""


def provider(port):
    """The head of the mesh config's sample-ext-authz-http provider; its other fields follow."""
    return f"""
extensionProviders:
- name: sample-ext-authz-http
  envoyExtAuthzHttp:
    service: ext-authz.default.svc.cluster.local
    port: {port}
    timeout: 5s
"""


def mesh_config(port, fail_open=False):
    return provider(port) + f"""\
    pathPrefix: /check
    failOpen: {"true" if fail_open else "false"}
    includeRequestHeadersInCheck: [x-ext-authz]
    includeAdditionalHeadersInCheck: {{x-from: meshd}}
    headersToUpstreamOnAllow: [x-user]
    headersToDownstreamOnAllow: [x-ext-authz-check-result]
    headersToDownstreamOnDeny: [x-ext-authz-check-result]
"""


CUSTOM = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-authz, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: CUSTOM
  provider: {name: sample-ext-authz-http}
  rules: [{to: [{operation: {paths: ["/headers*"]}}]}]
"""

DENY_BLOCKED = """
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-blocked, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules: [{when: [{key: "request.headers[x-block]", values: ["yes"]}]}]
"""


def call(c, path, headers=None):
    status, hdrs, body = c.get("reviews", path, headers)
    return status, hdrs, body.decode(errors="replace")


def test_custom_policy_asks_the_http_authorizer_before_deny_and_allow(mesh):
    authz = Authorizer().start()
    try:
        cp = ControlPlane(mesh, {"services.yaml": service_entry("reviews") + "---" + authorizer_entry(authz.port),
                                 "authz.yaml": CUSTOM + DENY_BLOCKED})
        path = write_mesh_config(cp, mesh_config(authz.port))
        cp.start(extra_args=["--mesh-config", path])
        client = cp.sidecar("client", "v1", with_app=False)
        reviews = cp.sidecar("reviews", "v1")
        cp.wait_ready(timeout=60)
        c = Client(client.outbound, timeout=15)

        # Not matched by the CUSTOM policy's rules: never sent for a check.
        assert call(c, "/ip")[0] == 200
        assert authz.checks == []

        # Allowed: the check carries the method, pathPrefix + path, the allowed and the
        # additional headers; the authorizer's x-user goes upstream, its check result back.
        status, hdrs, body = call(c, "/headers?q=1", {"x-ext-authz": "allow", "x-other": "no", "authorization": "Bearer t"})
        assert status == 200, body
        assert json.loads(body)["headers"].get("x-user") == "alice", body
        assert hdrs.get("x-ext-authz-check-result") == "allowed", hdrs
        method, check_path, check_headers = authz.checks[-1]
        assert (method, check_path) == ("GET", "/check/headers?q=1")
        assert check_headers.get("x-ext-authz") == "allow"
        assert check_headers.get("x-from") == "meshd"
        assert check_headers.get("authorization") == "Bearer t"
        assert "x-other" not in check_headers, check_headers

        # Denied: the authorizer's status, body and the headers named for the client only.
        status, hdrs, body = call(c, "/headers")
        assert (status, body) == (403, DENY_BODY)
        assert hdrs.get("x-ext-authz-check-result") == "denied", hdrs
        assert "x-internal" not in hdrs, hdrs

        # CUSTOM comes first: its denial is the authorizer's even when a DENY policy also
        # matches; once it allows, the DENY policy still has its say.
        status, _, body = call(c, "/headers", {"x-block": "yes"})
        assert (status, body) == (403, DENY_BODY)
        checks = len(authz.checks)
        status, _, body = call(c, "/headers", {"x-block": "yes", "x-ext-authz": "allow"})
        assert (status, body) == (403, "RBAC: access denied")
        assert len(authz.checks) == checks + 1

        # The authorizer down: failOpen false answers statusOnError (403), with no body.
        authz.stop()
        status, _, body = call(c, "/headers", {"x-ext-authz": "allow"})
        assert (status, body) == (403, ""), body
        assert call(c, "/ip")[0] == 200

        # failOpen true: the request goes on as if allowed.
        before = cp.syncz()
        version = cp.config_status()["configVersion"]
        write_mesh_config(cp, mesh_config(authz.port, fail_open=True))
        wait_until(lambda: cp.config_status()["configVersion"] > version, 20, what="the mesh config reloaded")
        cp.wait_synced(changed_from=[r for r in before if r["id"] == reviews.id], timeout=30)
        status, _, body = call(c, "/headers")
        assert status == 200, body
        c.close()
    finally:
        authz.stop()


class BodyAuthorizer(LoopbackHTTP):
    """Allows a check whose body starts with "open"; records each check's body and headers."""

    def __init__(self):
        super().__init__(self.check, with_body=True)
        self.checks = []

    def check(self, method, path, headers, body):
        self.checks.append((headers, body))
        return (200, {}, b"") if body.startswith(b"open") else (403, {}, b"closed")


def body_mesh_config(port, partial):
    return provider(port) + f"""\
    includeRequestBodyInCheck: {{maxRequestBytes: 16, allowPartialMessage: {"true" if partial else "false"}}}
"""


def test_include_request_body_in_check_sends_the_body_up_to_its_limit(mesh):
    authz = BodyAuthorizer().start()
    try:
        cp = ControlPlane(mesh, {"services.yaml": service_entry("reviews") + "---" + authorizer_entry(authz.port),
                                 "authz.yaml": CUSTOM})
        path = write_mesh_config(cp, body_mesh_config(authz.port, partial=False))
        cp.start(extra_args=["--mesh-config", path])
        client = cp.sidecar("client", "v1", with_app=False)
        reviews = cp.sidecar("reviews", "v1")
        cp.wait_ready(timeout=60)
        c = Client(client.outbound, timeout=15)

        # The check carries the body (and Envoy's partial-body header); its answer decides.
        status, _, body = c.request("POST", "reviews", "/headers", body=b"open sesame")
        assert status == 200, body
        headers, sent = authz.checks[-1]
        assert sent == b"open sesame"
        assert headers.get("x-envoy-auth-partial-body") == "false", headers
        status, _, body = c.request("POST", "reviews", "/headers", body=b"shut")
        assert (status, body) == (403, b"closed")

        # Over maxRequestBytes without allowPartialMessage: 413, and no check is made.
        checks = len(authz.checks)
        status, _, _ = c.request("POST", "reviews", "/headers", body=b"open" + b"x" * 40)
        assert status == 413
        assert len(authz.checks) == checks
        c.close()

        # allowPartialMessage: the first maxRequestBytes go, marked partial.
        before = cp.syncz()
        version = cp.config_status()["configVersion"]
        write_mesh_config(cp, body_mesh_config(authz.port, partial=True))
        wait_until(lambda: cp.config_status()["configVersion"] > version, 20, what="the mesh config reloaded")
        cp.wait_synced(changed_from=[r for r in before if r["id"] == reviews.id], timeout=30)
        c = Client(client.outbound, timeout=15)
        status, _, body = c.request("POST", "reviews", "/headers", body=b"open" + b"x" * 40)
        assert status == 200, body
        headers, sent = authz.checks[-1]
        assert sent == b"open" + b"x" * 12
        assert headers.get("x-envoy-auth-partial-body") == "true", headers
        c.close()
    finally:
        authz.stop()
