"""AuthorizationPolicy CUSTOM with meshd's `meshdLuaPlugin` extension provider: the authorizer
is a LuaPlugin run inside the sidecar, no separate server. The workload's app here is a
recording server, so a request the plugin denies is shown never to reach it."""
import json
import subprocess

from conftest import MESHD
from mesh_harness import Client, ControlPlane, LoopbackHTTP, http_get, service_entry, wait_until, write_mesh_config

PLUGIN = """
apiVersion: extensions.meshd.io/v1alpha1
kind: LuaPlugin
metadata: {name: authz, namespace: default}
spec:
  pluginConfig: {user: alice}
  limits: {instructions: 200000}
  inline: |
    function envoy_on_request(handle)
      local h = handle:headers()
      local token = h:get("x-token")
      if token == "good" then
        h:add("x-user", handle:filterContext()["user"])
        h:remove("x-token")
        return
      elseif token == "boom" then
        error("authorizer broke")
      elseif token == "spin" then
        while true do end
      end
      handle:respond({[":status"] = "401", ["www-authenticate"] = "Token"}, "token required")
    end
"""

MESH = """
extensionProviders:
- name: lua-authz
  meshdLuaPlugin: {plugin: default/authz}
"""


def policies(dry_run=False):
    annotation = "\n  annotations: {istio.io/dry-run: \"true\"}" if dry_run else ""
    return f"""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: lua-authz
  namespace: default{annotation}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  action: CUSTOM
  provider: {{name: lua-authz}}
  rules: [{{to: [{{operation: {{paths: ["/api*"]}}}}]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: deny-blocked, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  action: DENY
  rules: [{{when: [{{key: "request.headers[x-block]", values: ["yes"]}}]}}]
"""


class RecordingApp(LoopbackHTTP):
    """The workload's app: answers 200 with the request's headers, and records each request."""

    def __init__(self, port):
        super().__init__(self.answer)
        self.port = port
        self.requests = []

    def answer(self, method, path, headers):
        self.requests.append((method, path, headers))
        return 200, {"content-type": "application/json"}, json.dumps({"headers": headers}).encode()


def stat(proxy, series):
    """One series' value at the proxy's admin port (0 when absent)."""
    _, text = http_get(f"http://127.0.0.1:{proxy.admin}/stats/prometheus", timeout=10)
    for line in text.splitlines():
        if line.startswith(series + " "):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def wait_stat(proxy, series, value):
    """Waits until a series reaches `value` (the proxy adds some counts on its loop's next tick)."""
    wait_until(lambda: stat(proxy, series) == value, 10, what=f"{series} == {value} (is {stat(proxy, series)})")


def call(c, path, headers=None):
    status, hdrs, body = c.get("reviews", path, headers)
    return status, hdrs, body.decode(errors="replace")


EXECUTIONS = 'meshd_lua_executions_total{plugin="default.authz"}'


def start(mesh, files):
    """The control plane with `files` and the mesh config, a client sidecar, and reviews's
    sidecar in front of a recording app: (control plane, client connection, reviews, app)."""
    cp = ControlPlane(mesh, {"services.yaml": service_entry("reviews"), **files})
    cp.start(extra_args=["--mesh-config", write_mesh_config(cp, MESH)])
    client = cp.sidecar("client", "v1", with_app=False)
    reviews = cp.sidecar("reviews", "v1", with_app=False)
    app = RecordingApp(reviews.app_port).start()
    try:
        cp.wait_ready(timeout=60)
    except Exception:
        app.stop()
        raise
    return cp, Client(client.outbound, timeout=15), reviews, app


def test_custom_policy_runs_the_lua_plugin_in_the_sidecar(mesh):
    cp, c, reviews, app = start(mesh, {"plugin.yaml": PLUGIN, "authz.yaml": policies()})
    try:
        # Not matched by the CUSTOM policy's rules: the plugin never runs.
        assert call(c, "/ip")[0] == 200
        assert len(app.requests) == 1
        wait_stat(reviews, EXECUTIONS, 0)

        # Allowed: the plugin's header edits go upstream (x-user added, x-token removed).
        status, _, body = call(c, "/api/a", {"x-token": "good"})
        assert status == 200, body
        seen = app.requests[-1][2]
        assert seen.get("x-user") == "alice", seen
        assert "x-token" not in seen, seen
        wait_stat(reviews, 'meshd_ext_authz_total{result="ok"}', 1)

        # Denied: the plugin's status, headers and body reach the client; the app never sees it.
        served = len(app.requests)
        status, hdrs, body = call(c, "/api/a")
        assert (status, body) == (401, "token required")
        assert hdrs.get("www-authenticate") == "Token", hdrs
        assert len(app.requests) == served
        wait_stat(reviews, 'meshd_ext_authz_total{result="denied"}', 1)

        # A Lua error and a plugin over its instruction limit fail closed: 403, empty body.
        for token in ["boom", "spin"]:
            status, _, body = call(c, "/api/a", {"x-token": token})
            assert (status, body) == (403, ""), (token, body)
        assert len(app.requests) == served
        wait_stat(reviews, 'meshd_ext_authz_total{result="error"}', 2)
        wait_stat(reviews, 'meshd_lua_errors_total{plugin="default.authz"}', 2)

        # CUSTOM comes first; once it allows, the DENY policy still has its say.
        status, _, body = call(c, "/api/a", {"x-token": "good", "x-block": "yes"})
        assert (status, body) == (403, "RBAC: access denied")
        assert len(app.requests) == served
        wait_stat(reviews, EXECUTIONS, 5)

        # Dry-run, as for the HTTP provider: a CUSTOM policy is neither enforced nor evaluated.
        cp.apply({"authz.yaml": policies(dry_run=True)}, changed=[reviews.id], timeout=30)
        status, _, body = call(c, "/api/a")
        assert status == 200, body
        wait_stat(reviews, EXECUTIONS, 5)
        c.close()
    finally:
        app.stop()


def test_a_provider_naming_no_plugin_is_warned_and_its_policy_denies(mesh):
    cp, c, _, app = start(mesh, {"authz.yaml": policies()})
    try:
        assert call(c, "/api/a", {"x-token": "good"})[0] == 403
        assert call(c, "/ip")[0] == 200
        assert [r[1] for r in app.requests] == ["/ip"]
        c.close()
    finally:
        app.stop()
    r = subprocess.run([MESHD, "validate", "-f", cp.config_dir, "--mesh-config", write_mesh_config(cp, MESH)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert ("mesh.yaml:4: warning: MeshConfig: extensionProviders[0].meshdLuaPlugin.plugin: no LuaPlugin default/authz"
            in r.stderr), r.stderr
