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
