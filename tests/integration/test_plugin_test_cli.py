"""`meshd plugin test`: runs a plugin offline; sections on stdout, exit 0 / 1 (script error) / 2 (bad input)."""
import os
import subprocess

from conftest import MESHD, ROOT

PLUGINS = os.path.join(ROOT, "plugins")


def run(tmp_path, plugin, request, response=None, config=None):
    files = {}
    for name, text in (("req.yaml", request), ("resp.yaml", response), ("cfg.yaml", config)):
        if text is not None:
            p = tmp_path / name
            p.write_text(text)
            files[name] = str(p)
    args = [MESHD, "plugin", "test", plugin, "--request", files["req.yaml"]]
    if "resp.yaml" in files:
        args += ["--response", files["resp.yaml"]]
    if "cfg.yaml" in files:
        args += ["--config", files["cfg.yaml"]]
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


def section(out, title):
    """The lines of one `== title` section."""
    lines = out.split("\n")
    start = next(i for i, l in enumerate(lines) if l.startswith("== " + title))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("== ") or lines[i].startswith("result:")),
               len(lines))
    return "\n".join(lines[start + 1:end])


def test_shipped_plugin_runs_offline(tmp_path):
    r = run(tmp_path, os.path.join(PLUGINS, "json-redact.lua"),
            "method: GET\npath: /users/1\nheaders: {accept: application/json}\n",
            "headers: {content-type: application/json}\nbody: '{\"name\": \"ann\", \"password\": \"pw\"}'\n",
            "pluginConfig: {fields: [password]}\n")
    assert r.returncode == 0, r.stdout + r.stderr
    up = section(r.stdout, "request to upstream")
    assert ":path: /users/1" in up and "accept: application/json" in up
    resp = section(r.stdout, "response to client")
    assert '"password":"[redacted]"' in resp
    assert "content-length: 38" in resp
    assert "[debug] json-redact: redacted 1 field(s)" in section(r.stdout, "logs")
    assert r.stdout.rstrip().endswith("result: ok")


def test_local_reply_metadata_and_httpcall(tmp_path):
    plugin = tmp_path / "p.lua"
    plugin.write_text("""
function envoy_on_request(h)
  h:streamInfo():dynamicMetadata():set("ns", "who", "me")
  local headers, body = h:httpCall("auth", {[":method"] = "GET", [":path"] = "/ok", [":authority"] = "auth"}, "", 100)
  h:logWarn("auth said " .. headers[":status"] .. " " .. body)
  h:respond({[":status"] = "403"}, "nope")
end
""")
    r = run(tmp_path, str(plugin), "path: /\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "403 Forbidden: sent by the script's respond()" in section(r.stdout, "local reply")
    assert ":status: 403" in section(r.stdout, "response to client")
    assert "[warning] auth said 503 upstream failure" in section(r.stdout, "logs")
    assert "ns:\n  who: me" in section(r.stdout, "dynamic metadata")
    assert "auth: GET auth/ok" in section(r.stdout, "httpCall")


def test_script_error_exits_1_with_line(tmp_path):
    plugin = tmp_path / "broken.lua"
    plugin.write_text("function envoy_on_request(h)\n  local x = nil\n  x.y = 1\nend\n")
    r = run(tmp_path, str(plugin), "path: /\n")
    assert r.returncode == 1
    assert "envoy_on_request: broken:3: attempt to index a nil value (local 'x')" in section(r.stdout, "errors")
    assert "result: FAILED" in r.stdout


def test_invalid_message_is_a_failure(tmp_path):
    plugin = tmp_path / "length.lua"
    plugin.write_text('function envoy_on_response(h) h:headers():replace("content-length", "10") end\n')
    r = run(tmp_path, str(plugin), "path: /\n", "headers: {content-length: '2'}\nbody: ok\n")
    assert r.returncode == 1, r.stdout + r.stderr
    assert ("the response to the client is not a valid HTTP message: content-length says 10 but the body has 2 bytes"
            in section(r.stdout, "errors"))
    assert "result: FAILED" in r.stdout


def test_body_made_for_a_response_without_one_is_a_valid_message(tmp_path):
    plugin = tmp_path / "made.lua"
    plugin.write_text('function envoy_on_response(h) h:body(true):setBytes("ok") end\n')
    r = run(tmp_path, str(plugin), "path: /\n")
    assert r.returncode == 0, r.stdout + r.stderr
    resp = section(r.stdout, "response to client")
    assert "content-length: 2" in resp and resp.rstrip().endswith("ok"), resp


def test_compile_error_exits_1_with_line(tmp_path):
    plugin = tmp_path / "syntax.lua"
    plugin.write_text("function envoy_on_request(h)\n  if then\nend\n")
    r = run(tmp_path, str(plugin), "path: /\n")
    assert r.returncode == 1
    assert "syntax error in syntax at line 2" in r.stderr


def test_bad_input_exits_2(tmp_path):
    plugin = os.path.join(PLUGINS, "header-rewrite.lua")
    r = run(tmp_path, plugin, "path: /\nbdy: x\n")
    assert r.returncode == 2
    assert "req.yaml:2: bdy: unknown field" in r.stderr
    r = run(tmp_path, plugin, "path: /\n", config="failStrategy: NEVER\n")
    assert r.returncode == 2 and "failStrategy" in r.stderr
    r = subprocess.run([MESHD, "plugin", "test", plugin, "--request", str(tmp_path / "missing.yaml")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "cannot read" in r.stderr
    r = subprocess.run([MESHD, "plugin", "test", str(tmp_path / "missing.lua"), "--request", str(tmp_path / "req.yaml")],
                       capture_output=True, text=True)
    assert r.returncode == 2


def test_help_documents_offline_httpcall():
    r = subprocess.run([MESHD, "plugin", "test", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    assert "--request" in r.stdout and "--response" in r.stdout and "--config" in r.stdout
    assert 'upstream failure' in r.stdout


# --- plugin resources (LuaPlugin, TrafficExtension) ---

def plugin_test(*args):
    return subprocess.run([MESHD, "plugin", "test", *map(str, args)], capture_output=True, text=True, timeout=30)


LOOPING_TAGGER = """
function envoy_on_request(h)
  h:headers():add("x-tag", h:filterContext()["tag"])
  if h:headers():get(":path") == "/busy" then
    local n = 0
    for i = 1, 200000 do n = n + i end
  end
end
"""


def test_luaplugin_yaml_runs_with_its_file_config_fail_strategy_and_limits(tmp_path):
    # The code sits beside the YAML, in a subdirectory: `file:` is relative to the YAML file,
    # not to the directory meshd runs in.
    (tmp_path / "lua").mkdir()
    (tmp_path / "lua" / "tagger.lua").write_text(LOOPING_TAGGER)
    (tmp_path / "tagger.yaml").write_text("""
apiVersion: extensions.meshd.io/v1alpha1
kind: LuaPlugin
metadata: {name: tagger, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  failStrategy: FAIL_CLOSE
  limits: {instructions: 100000}
  pluginConfig: {tag: from-yaml}
  file: lua/tagger.lua
""")
    (tmp_path / "busy.yaml").write_text("path: /busy\n")
    plugin = tmp_path / "tagger.yaml"

    r = plugin_test(plugin)
    assert r.returncode == 0, r.stdout + r.stderr
    first = r.stdout.split("\n")[0]
    assert first.startswith("plugin: shop.tagger (LuaPlugin/shop/tagger, ") and first.endswith("failStrategy FAIL_CLOSE")
    assert "x-tag: from-yaml" in section(r.stdout, "request to upstream")

    # Its limits: 200000 additions exceed the resource's 100000 instructions; FAIL_CLOSE answers
    # 503 when a limit ends the run (500 is for a script error).
    r = plugin_test(plugin, "--request", tmp_path / "busy.yaml")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "instruction budget exceeded" in section(r.stdout, "errors")
    assert "503 Service Unavailable: the script failed and failStrategy is FAIL_CLOSE" in section(r.stdout, "local reply")

    # --config overrides what it names and keeps the rest (limits key by key).
    (tmp_path / "cfg.yaml").write_text("failStrategy: FAIL_OPEN\npluginConfig: {tag: from-cli}\nlimits: {memoryBytes: 8388608}\n")
    r = plugin_test(plugin, "--request", tmp_path / "busy.yaml", "--config", tmp_path / "cfg.yaml")
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.split("\n")[0].endswith("failStrategy FAIL_OPEN")
    assert "instruction budget exceeded" in section(r.stdout, "errors")
    assert "local reply" not in r.stdout
    assert "x-tag: from-cli" in section(r.stdout, "request to upstream")
    (tmp_path / "cfg.yaml").write_text("limits: {instructions: 10000000}\n")
    r = plugin_test(plugin, "--request", tmp_path / "busy.yaml", "--config", tmp_path / "cfg.yaml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_traffic_extension_yaml_runs_its_inline_code(tmp_path):
    (tmp_path / "ext.yaml").write_text("""
apiVersion: extensions.istio.io/v1alpha1
kind: TrafficExtension
metadata: {name: stamp}
spec:
  targetRefs: [{kind: Service, name: reviews}]
  phase: STATS
  lua:
    inlineCode: |
      function envoy_on_response(h)
        h:headers():add("x-stamp", "te")
      end
""")
    (tmp_path / "req.yaml").write_text("method: POST\npath: /items\nbody: hi\n")
    r = plugin_test(tmp_path / "ext.yaml", "--request", tmp_path / "req.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("plugin: default.stamp (TrafficExtension/default/stamp, ")
    assert ":method: POST" in section(r.stdout, "request to upstream")
    assert "x-stamp: te" in section(r.stdout, "response to client")


def test_without_request_a_response_plugin_sees_get_slash(tmp_path):
    plugin = tmp_path / "resp.lua"
    plugin.write_text('function envoy_on_response(h)\n  h:headers():add("x-seen", "yes")\nend\n')
    r = plugin_test(plugin)
    assert r.returncode == 0, r.stdout + r.stderr
    up = section(r.stdout, "request to upstream")
    assert ":method: GET\n:path: /\n" in up and "(no body)" in up
    assert "x-seen: yes" in section(r.stdout, "response to client")
    # The shipped example's plugin, as it is: a response-only LuaPlugin.
    r = plugin_test(os.path.join(ROOT, "examples", "bookinfo", "reviews-plugin.yaml"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "x-reviews-plugin: hello from lua v1" in section(r.stdout, "response to client")


def test_several_plugins_in_a_file_need_name(tmp_path):
    (tmp_path / "mesh.yaml").write_text("""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}
---
apiVersion: extensions.meshd.io/v1alpha1
kind: LuaPlugin
metadata: {name: first}
spec:
  inline: 'function envoy_on_request(h) h:headers():add("x-plugin", "first") end'
---
apiVersion: extensions.istio.io/v1alpha1
kind: TrafficExtension
metadata: {name: second, namespace: other}
spec:
  lua: {inlineCode: 'function envoy_on_request(h) h:headers():add("x-plugin", "second") end'}
""")
    mesh = tmp_path / "mesh.yaml"
    r = plugin_test(mesh)
    assert r.returncode == 2
    assert "has 2 plugins (LuaPlugin/default/first, TrafficExtension/other/second): choose one with --name" in r.stderr
    for name in ("second", "other/second", "TrafficExtension/other/second"):
        r = plugin_test(mesh, "--name", name)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "x-plugin: second" in section(r.stdout, "request to upstream")
    r = plugin_test(mesh, "--name", "first")
    assert r.returncode == 0 and "x-plugin: first" in section(r.stdout, "request to upstream")
    r = plugin_test(mesh, "--name", "third")
    assert r.returncode == 2 and "no plugin named third" in r.stderr


def test_plugin_resource_that_cannot_run_offline_exits_2(tmp_path):
    url = tmp_path / "url.yaml"
    url.write_text("""
apiVersion: extensions.meshd.io/v1alpha1
kind: LuaPlugin
metadata: {name: remote}
spec:
  url: https://plugins.example.com/remote.lua
  sha256: "%s"
""" % ("0" * 64))
    r = plugin_test(url)
    assert r.returncode == 2
    assert "spec.url: meshd plugin test runs offline and does not fetch https://plugins.example.com/remote.lua" in r.stderr
    # What `meshd validate` refuses, as it says it: here a Lua syntax error, with its line.
    bad = tmp_path / "bad.yaml"
    bad.write_text("""
apiVersion: extensions.meshd.io/v1alpha1
kind: LuaPlugin
metadata: {name: bad}
spec:
  inline: "function envoy_on_request(h)\\n  if then\\nend\\n"
""")
    r = plugin_test(bad)
    assert r.returncode == 2
    assert "LuaPlugin/default/bad: spec.inline:" in r.stderr and "line 2" in r.stderr
    # A file with no Lua plugin.
    vs = tmp_path / "vs.yaml"
    vs.write_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\n"
                  "spec: {hosts: [a], http: [{route: [{destination: {host: a}}]}]}\n")
    r = plugin_test(vs)
    assert r.returncode == 2 and "no LuaPlugin" in r.stderr
