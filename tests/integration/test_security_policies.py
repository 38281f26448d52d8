"""AuthorizationPolicy and RequestAuthentication end to end: the control plane translates them
into the reviews sidecar's inbound filters (and a gateway's), a client sidecar calls through
the mesh, and the demo-app behind shows what reached it. Inputs follow Istio's own
authorization and JWT task examples (httpbin there, reviews here); keys and tokens are made
here with python's cryptography package."""
import base64
import json
import time

import pytest

from conftest import free_port
from mesh_harness import Client, ControlPlane, LoopbackHTTP, http_get, service_entry, wait_until

cryptography = pytest.importorskip("cryptography")
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils  # noqa: E402

ISSUER = "testing@secure.istio.io"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(n, length=None):
    length = length or (n.bit_length() + 7) // 8
    return n.to_bytes(length, "big")


class Signer:
    """An RSA key (RS256) or a P-256 key (ES256), its JWKS, and tokens it signs."""

    def __init__(self, kind="rsa", kid="k1"):
        self.kind, self.kid = kind, kid
        if kind == "rsa":
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            self.key = ec.generate_private_key(ec.SECP256R1())

    def jwks(self):
        pub = self.key.public_key().public_numbers()
        if self.kind == "rsa":
            jwk = {"kty": "RSA", "kid": self.kid, "n": b64url(uint(pub.n)), "e": b64url(uint(pub.e))}
        else:
            jwk = {"kty": "EC", "kid": self.kid, "crv": "P-256", "x": b64url(uint(pub.x, 32)), "y": b64url(uint(pub.y, 32))}
        return json.dumps({"keys": [jwk]})

    def token(self, **claims):
        alg = "RS256" if self.kind == "rsa" else "ES256"
        body = {"iss": ISSUER, "sub": ISSUER, "exp": int(time.time()) + 600, **claims}
        head = b64url(json.dumps({"alg": alg, "kid": self.kid, "typ": "JWT"}).encode())
        payload = b64url(json.dumps(body).encode())
        signing_input = f"{head}.{payload}".encode()
        if self.kind == "rsa":
            sig = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = utils.decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            sig = uint(r, 32) + uint(s, 32)
        return f"{head}.{payload}.{b64url(sig)}"


def unsigned(**claims):
    body = {"iss": ISSUER, "sub": ISSUER, "exp": int(time.time()) + 600, **claims}
    return f"{b64url(json.dumps({'alg': 'none'}).encode())}.{b64url(json.dumps(body).encode())}."


def policy(name, spec, kind="AuthorizationPolicy"):
    return f"""
apiVersion: security.istio.io/v1
kind: {kind}
metadata: {{name: {name}, namespace: default}}
spec: {spec}
"""


def request(cp_client, path="/", headers=None):
    """(status, headers, body) of a call from the client sidecar to reviews."""
    status, hdrs, body = cp_client.get("reviews", path, headers)
    return status, hdrs, body.decode(errors="replace")


def start(mesh, files=None, gateway=False, extra_args=()):
    cp = ControlPlane(mesh, {"services.yaml": service_entry("reviews"), **(files or {})})
    cp.start(extra_args=extra_args)
    client = cp.sidecar("client", "v1", with_app=False)
    reviews = cp.sidecar("reviews", "v1")
    gw = cp.gateway() if gateway else None
    cp.wait_ready(timeout=60)
    return cp, client, reviews, gw


def test_allow_deny_and_deny_all_follow_istio(mesh):
    cp, client_proxy, reviews, _ = start(mesh)
    # Policies change the reviews sidecar's inbound listener only (the client has none).
    only = [reviews.id]
    c = Client(client_proxy.outbound, timeout=10)
    try:
        assert request(c)[0] == 200

        # Istio's "allow-nothing": an empty spec in the workload's namespace denies everything.
        cp.apply({"authz.yaml": policy("allow-nothing", "{}")}, changed=only, timeout=30)
        status, _, body = request(c)
        assert (status, body) == (403, "RBAC: access denied")

        # Istio's deny example: DENY GET unless x-token is admin, beside an allow-all ALLOW
        # policy (`rules: [{}]`), on the reviews workload only.
        cp.apply({"authz.yaml": policy("allow-all", "{selector: {matchLabels: {app: reviews}}, rules: [{}]}")
                  + "---" + policy("deny-method-get", """
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules:
  - to: [{operation: {methods: ["GET"], paths: ["/headers*"]}}]
    when: [{key: "request.headers[x-token]", notValues: ["admin"]}]""")}, changed=only, timeout=30)
        assert request(c, "/headers")[0] == 403
        assert request(c, "/headers", {"x-token": "guest"})[0] == 403
        assert request(c, "/headers", {"x-token": "admin"})[0] == 200
        assert request(c, "/ip")[0] == 200

        # An ALLOW policy that matches nothing of a request denies it: only /ip and GET allowed.
        cp.apply({"authz.yaml": policy("allow-ip", """
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules: [{to: [{operation: {paths: ["/ip"], methods: ["GET"]}}]}]""")}, changed=only, timeout=30)
        assert request(c, "/ip")[0] == 200
        assert request(c, "/ip?x=1")[0] == 200
        assert request(c, "/headers")[0] == 403

        # AUDIT never denies; the policy removed, everything passes again.
        cp.apply({"authz.yaml": policy("audit", "{action: AUDIT, rules: [{}]}")}, changed=only, timeout=30)
        assert request(c, "/headers")[0] == 200
    finally:
        c.close()


def test_jwt_request_authentication_with_request_principals(mesh):
    signer = Signer("rsa")
    ec_signer = Signer("ec", kid="e1")
    jwks = json.dumps({"keys": json.loads(signer.jwks())["keys"] + json.loads(ec_signer.jwks())["keys"]})
    files = {
        # Istio's "jwt-example" RequestAuthentication (inline keys) and "require-jwt" policy.
        "authn.yaml": policy("jwt-example", f"""
  selector: {{matchLabels: {{app: reviews}}}}
  jwtRules:
  - issuer: "{ISSUER}"
    jwks: '{jwks}'
    audiences: [reviews]
    outputClaimToHeaders: [{{header: x-jwt-sub, claim: sub}}]""", kind="RequestAuthentication"),
        "authz.yaml": policy("require-jwt", f"""
  selector: {{matchLabels: {{app: reviews}}}}
  action: ALLOW
  rules:
  - from: [{{source: {{requestPrincipals: ["{ISSUER}/{ISSUER}"]}}}}]
    when: [{{key: "request.auth.claims[groups]", values: ["group1"]}}]"""),
    }
    cp, client_proxy, _, _ = start(mesh, files)
    c = Client(client_proxy.outbound, timeout=10)
    try:
        good = signer.token(aud="reviews", groups=["group1", "group2"])
        status, _, body = request(c, "/headers", {"authorization": f"Bearer {good}"})
        assert status == 200, body
        seen = json.loads(body)["headers"]
        assert seen.get("x-jwt-sub") == ISSUER
        assert "authorization" not in seen, "the token is not forwarded by default"

        status, _, body = request(c, "/headers", {"authorization": f"Bearer {ec_signer.token(aud='reviews', groups=['group1'])}"})
        assert status == 200, body

        # No token: authentication lets it through, the policy refuses it.
        assert request(c)[:1] == (403,)
        # A verified token without the claim the policy wants.
        assert request(c, "/", {"authorization": f"Bearer {signer.token(aud='reviews', groups=['other'])}"})[0] == 403

        head, payload, sig = good.split(".")
        forged = b64url(json.dumps({"iss": ISSUER, "sub": ISSUER, "aud": "reviews", "groups": ["group1"],
                                    "exp": int(time.time()) + 9999, "admin": True}).encode())
        cases = {
            "tampered": (f"{head}.{forged}.{sig}", 401, "Jwt verification fails"),
            "expired": (signer.token(aud="reviews", groups=["group1"], exp=int(time.time()) - 3600), 401, "Jwt is expired"),
            "not yet valid": (signer.token(aud="reviews", groups=["group1"], nbf=int(time.time()) + 3600), 401, "Jwt not yet valid"),
            "alg none": (unsigned(aud="reviews", groups=["group1"]), 401, "Jwt header [alg] field value is invalid"),
            "other key": (Signer("rsa").token(aud="reviews", groups=["group1"]), 401, "Jwt verification fails"),
            "other issuer": (signer.token(iss="https://evil.example", aud="reviews"), 401, "Jwt issuer is not configured"),
            # Envoy answers a token for another audience with 403.
            "wrong audience": (signer.token(aud="other", groups=["group1"]), 403, "Audiences in Jwt are not allowed"),
        }
        for name, (token, want_status, want_body) in cases.items():
            status, hdrs, body = request(c, "/", {"authorization": f"Bearer {token}"})
            assert (status, body) == (want_status, want_body), name
            if want_status == 401:
                assert hdrs.get("www-authenticate", "").startswith("Bearer realm="), name
    finally:
        c.close()


def dry_run_count(proxy, action, result):
    text = http_get(f"http://127.0.0.1:{proxy.admin}/stats/prometheus")[1]
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("meshd_rbac_dry_run_total{") and f'action="{action}"' in line and f'result="{result}"' in line)


def test_dry_run_policies_are_evaluated_and_counted_but_not_enforced(mesh):
    dry = "metadata: {name: %s, namespace: default, annotations: {istio.io/dry-run: \"true\"}}"
    files = {"authz.yaml": policy("deny-all", "{action: DENY, rules: [{}]}").replace(
        "metadata: {name: deny-all, namespace: default}", dry % "deny-all")
        + "---" + policy("allow-ip", "{action: ALLOW, rules: [{to: [{operation: {paths: [/ip]}}]}]}").replace(
        "metadata: {name: allow-ip, namespace: default}", dry % "allow-ip")}
    cp, client_proxy, reviews, _ = start(mesh, files)
    c = Client(client_proxy.outbound, timeout=10)
    try:
        # Either policy enforced would refuse /headers; in dry-run both only count.
        assert request(c, "/headers")[0] == 200
        assert request(c, "/ip")[0] == 200
        assert dry_run_count(reviews, "DENY", "denied") == 2
        assert dry_run_count(reviews, "ALLOW", "denied") == 1
        assert dry_run_count(reviews, "ALLOW", "allowed") == 1

        # Without the annotation the same DENY policy is enforced.
        cp.apply({"authz.yaml": policy("deny-all", "{action: DENY, rules: [{}]}")}, changed=[reviews.id], timeout=30)
        status, _, body = request(c, "/ip")
        assert (status, body) == (403, "RBAC: access denied")
    finally:
        c.close()


class JWKSServer(LoopbackHTTP):
    """A JWKS on loopback at /jwks; its keys can be swapped (rotation) and it can be down."""

    def __init__(self, jwks):
        super().__init__(self.serve)
        self.jwks = jwks
        self.fetches = 0

    def serve(self, method, path, headers):
        self.fetches += 1
        return (200 if path == "/jwks" else 404), {"content-type": "application/json"}, self.jwks.encode()


def test_jwks_uri_is_fetched_cached_and_refreshed(mesh):
    old, new = Signer("rsa", kid="old"), Signer("rsa", kid="new")
    jwks = JWKSServer(old.jwks())
    files = {"authn.yaml": policy("jwks-uri", f"""
  selector: {{matchLabels: {{app: reviews}}}}
  jwtRules:
  - issuer: "{ISSUER}"
    jwksUri: http://127.0.0.1:{jwks.port}/jwks
    timeout: 2s""", kind="RequestAuthentication")}
    # Envoy keeps a fetched JWKS 5 minutes; 3 s here, so a rotation shows within the test.
    cp, client_proxy, _, _ = start(mesh, files, extra_args=["--jwks-cache-duration-ms", "3000"])
    c = Client(client_proxy.outbound, timeout=15)
    try:
        # The JWKS server is down: a token of the issuer fails closed, no token follows policy.
        status, _, body = request(c, "/", {"authorization": f"Bearer {old.token()}"})
        assert (status, body) == (401, "Jwks remote fetch is failed")
        assert request(c)[0] == 200

        # Up: fetched on the next token, then served from the cache.
        jwks.start()
        status, _, body = request(c, "/", {"authorization": f"Bearer {old.token()}"})
        assert status == 200, body
        fetches = jwks.fetches
        assert fetches >= 1
        assert request(c, "/", {"authorization": f"Bearer {old.token()}"})[0] == 200
        assert jwks.fetches == fetches, "a fresh JWKS is not fetched again"

        # Rotation: the new key verifies once the cached set expired and was fetched again.
        jwks.jwks = new.jwks()
        wait_until(lambda: request(c, "/", {"authorization": f"Bearer {new.token()}"})[0] == 200, 30,
                   what="the rotated JWKS fetched")
        status, _, body = request(c, "/", {"authorization": f"Bearer {old.token()}"})
        assert (status, body) == (401, "Jwks doesn't have key to match kid or alg from Jwt")

        # Down again: once the cached set expires, tokens fail closed again.
        jwks.stop()
        wait_until(lambda: request(c, "/", {"authorization": f"Bearer {new.token()}"})[2] == "Jwks remote fetch is failed",
                   30, what="the expired JWKS refused")
        assert request(c)[0] == 200
    finally:
        c.close()
        jwks.stop()


def test_gateway_policy_by_selector(mesh):
    gateway_port = free_port()
    files = {
        "gateway.yaml": f"""
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: ingress}}
spec:
  selector: {{istio: ingressgateway}}
  servers: [{{port: {{number: {gateway_port}, name: http, protocol: HTTP}}, hosts: ["*"]}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: ingress}}
spec:
  hosts: ["*"]
  gateways: [ingress]
  http: [{{route: [{{destination: {{host: reviews, port: {{number: 9080}}}}}}]}}]
""",
        # Istio's ingress example (a DENY by remote IP on the gateway workload), on a path:
        # the gateway trusts no X-Forwarded-For hop, so its remote address is the peer and a
        # forged header does not get a loopback client past it.
        "authz.yaml": """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ingress-policy, namespace: default}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules: [{from: [{source: {remoteIpBlocks: ["127.0.0.0/8"]}}], to: [{operation: {paths: ["/blocked*"]}}]}]
""",
    }
    cp, _, _, gw = start(mesh, files, gateway=True)
    c = Client(gateway_port, timeout=10)
    try:
        assert wait_until(lambda: request(c)[0] == 200, 20, what="gateway serves")
        status, _, body = request(c, "/blocked")
        assert (status, body) == (403, "RBAC: access denied")
        assert request(c, "/blocked/x", {"x-forwarded-for": "198.51.100.1"})[0] == 403
        assert request(c, "/open")[0] == 200
    finally:
        c.close()


def test_principals_and_namespaces_from_mutual_tls_peers(mesh):
    """Istio's first authorization example: only the `sleep` service account may GET the
    workload. Sidecars with bootstrap tokens talk mutual TLS; the principal is the caller's
    SPIFFE ID without `spiffe://`."""
    from test_identity import mesh_sidecar, token
    files = {"services.yaml": service_entry("reviews"), "authz.yaml": policy("reviews-viewer", """
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"], namespaces: ["default"]}}]
    to: [{operation: {methods: ["GET"]}}]""")}
    cp = ControlPlane(mesh, files).start()
    mesh_sidecar(cp, "reviews")
    sleep = cp.sidecar("sleep", with_app=False, extra_args=["--service-account", "sleep",
                                                            "--token-file", token(cp, "default", "sleep", "sleep")])
    other = cp.sidecar("other", with_app=False, extra_args=["--service-account", "other",
                                                            "--token-file", token(cp, "default", "other", "other")])
    cp.wait_ready(timeout=60)
    allowed, denied = Client(sleep.outbound, timeout=10), Client(other.outbound, timeout=10)
    try:
        # Certificates arrive over the discovery stream: wait for the first mutual-TLS answer.
        wait_until(lambda: request(allowed)[0] == 200, 30, what="sleep allowed over mutual TLS")
        status, _, body = request(denied)
        assert (status, body) == (403, "RBAC: access denied")
        assert request(allowed)[0] == 200
    finally:
        allowed.close()
        denied.close()
