"""Lua plugins from `luaPlugins` through real `meshd proxy` processes: attachment, order,
per-route overrides, httpCall, clearRouteCache, compile errors, hot swap under load, sandbox."""
import http.client
import json
import re
import threading
import time

from conftest import bounded_load, free_port


def plugin(name, code, **extra):
    p = {"name": name, "inlineCode": code}
    p.update(extra)
    return p


def header_plugin(name, header, value, **extra):
    """A plugin appending `value` to request header `header` (comma-separated, in chain order)."""
    return plugin(name, f"""
function envoy_on_request(h)
  local hd = h:headers()
  local v = hd:get("{header}")
  hd:replace("{header}", (v and (v .. ",") or "") .. "{value}")
end
""", **extra)


def lua_config(port, clusters, plugins, vhosts=None, filters=None):
    """One listener `main` on `port`; `clusters` maps names to ports; virtual hosts default to one catch-all."""
    listener = {"name": "main", "address": "127.0.0.1", "port": port, "routeConfig": "rc"}
    if filters:
        listener["httpFilters"] = filters
    first = next(iter(clusters))
    return {
        "listeners": [listener],
        "routeConfigs": [{"name": "rc", "virtualHosts": vhosts or [
            {"name": "all", "domains": ["*"], "routes": [
                {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": first}}]}]}],
        "clusters": [{"name": n, "connectTimeoutMs": 1000, "endpoints": [{"address": "127.0.0.1", "port": p}]}
                     for n, p in clusters.items()],
        "luaPlugins": plugins,
    }


def request(port, path="/", method="GET", headers=None, body=None, timeout=10):
    """Returns (status, response headers as a lower-case dict, body text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode(errors="replace")
    finally:
        conn.close()


def echoed(port, path="/", **kw):
    """The request headers as the demo upstream saw them (and the service that answered)."""
    status, _, body = request(port, path, **kw)
    assert status == 200, body
    seen = json.loads(body)
    return seen["headers"], seen["service"]


def test_plugin_attached_to_one_virtual_host_or_route_only(mesh):
    app = mesh.upstream("app")
    port = free_port()
    vhosts = [
        {"name": "api", "domains": ["api.local"], "routes": [
            {"name": "api-default", "match": {"prefix": "/"}, "route": {"cluster": "app"}}]},
        {"name": "web", "domains": ["*"], "routes": [
            {"name": "web-special", "match": {"prefix": "/special"}, "route": {"cluster": "app"}},
            {"name": "web-default", "match": {"prefix": "/"}, "route": {"cluster": "app"}}]},
    ]
    plugins = [
        header_plugin("api-only", "x-api-plugin", "yes", attachTo={"virtualHosts": ["api"]}),
        header_plugin("special-only", "x-special-plugin", "yes", attachTo={"routes": ["web-special"]}),
        header_plugin("main-only", "x-main-plugin", "yes", attachTo={"listeners": ["main"]}),
    ]
    proxy = mesh.proxy(lua_config(port, {"app": app}, plugins, vhosts=vhosts))
    h, _ = echoed(port, headers={"Host": "api.local"})
    assert h.get("x-api-plugin") == "yes" and "x-special-plugin" not in h and h.get("x-main-plugin") == "yes"
    h, _ = echoed(port, headers={"Host": "www.local"})
    assert "x-api-plugin" not in h and "x-special-plugin" not in h and h.get("x-main-plugin") == "yes"
    h, _ = echoed(port, "/special/x", headers={"Host": "www.local"})
    assert "x-api-plugin" not in h and h.get("x-special-plugin") == "yes"
    # Streams a plugin does not attach to cost it no run at all.
    assert proxy.stat('meshd_lua_executions_total{plugin="api-only"}') == 1
    assert proxy.stat('meshd_lua_executions_total{plugin="special-only"}') == 1
    assert proxy.stat('meshd_lua_executions_total{plugin="main-only"}') == 3


def test_chain_order_is_phase_then_priority_then_name(mesh):
    app = mesh.upstream("app")
    port = free_port()
    plugins = [  # listed out of order on purpose
        header_plugin("z-unspec", "x-order", "z-unspec"),
        header_plugin("stats", "x-order", "stats", phase="STATS"),
        header_plugin("authn-low", "x-order", "authn-low", phase="AUTHN", priority=1),
        header_plugin("a-unspec", "x-order", "a-unspec", phase="UNSPECIFIED"),
        header_plugin("authz", "x-order", "authz", phase="AUTHZ", priority=-5),
        header_plugin("authn-high", "x-order", "authn-high", phase="AUTHN", priority=10),
        header_plugin("high-unspec", "x-order", "high-unspec", priority=3),
    ]
    filters = [{"name": "meshd.header_mutation", "config": {"request": {"set": {"x-order": "native"}}}}]
    mesh.proxy(lua_config(port, {"app": app}, plugins, filters=filters))
    h, _ = echoed(port)
    assert h["x-order"] == "native,authn-high,authn-low,authz,stats,high-unspec,a-unspec,z-unspec"


def test_per_route_disabled_source_code_and_metadata(mesh):
    app = mesh.upstream("app")
    port = free_port()
    vhosts = [{"name": "all", "domains": ["*"], "routes": [
        {"name": "off", "match": {"prefix": "/off"}, "route": {"cluster": "app"},
         "perFilterConfig": {"tagger": {"disabled": True}}},
        {"name": "all-off", "match": {"prefix": "/all-off"}, "route": {"cluster": "app"},
         "perFilterConfig": {"meshd.lua": {"disabled": True}}},
        {"name": "reenabled", "match": {"prefix": "/reenabled"}, "route": {"cluster": "app"},
         "perFilterConfig": {"meshd.lua": {"disabled": True}, "tagger": {"disabled": False}}},
        {"name": "replaced", "match": {"prefix": "/replaced"}, "route": {"cluster": "app"},
         "perFilterConfig": {"tagger": {"sourceCode":
                                        "function envoy_on_request(h) h:headers():replace('x-tag', 'route code') end"}}},
        {"name": "meta", "match": {"prefix": "/meta"}, "route": {"cluster": "app"},
         "perFilterConfig": {"tagger": {"metadata": {"team": "blue"}}}},
        {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]
    plugins = [
        plugin("tagger", """
function envoy_on_request(h)
  h:headers():replace("x-tag", "plugin code")
  local team = h:metadata():get("team")
  if team then h:headers():replace("x-team", team) end
end
"""),
        header_plugin("other", "x-other", "ran"),
    ]
    mesh.proxy(lua_config(port, {"app": app}, plugins, vhosts=vhosts))
    h, _ = echoed(port, "/")
    assert h["x-tag"] == "plugin code" and h["x-other"] == "ran" and "x-team" not in h
    h, _ = echoed(port, "/off")
    assert "x-tag" not in h and h["x-other"] == "ran"
    h, _ = echoed(port, "/all-off")
    assert "x-tag" not in h and "x-other" not in h
    h, _ = echoed(port, "/reenabled")
    assert h["x-tag"] == "plugin code" and "x-other" not in h
    h, _ = echoed(port, "/replaced")
    assert h["x-tag"] == "route code" and h["x-other"] == "ran"
    h, _ = echoed(port, "/meta")
    assert h["x-tag"] == "plugin code" and h["x-team"] == "blue"


def test_per_route_config_is_validated(mesh):
    app = mesh.upstream("app")
    port = free_port()
    cfg = lua_config(port, {"app": app}, [header_plugin("tagger", "x-tag", "1")])
    proxy = mesh.proxy(cfg)
    route = cfg["routeConfigs"][0]["virtualHosts"][0]["routes"][0]
    route["perFilterConfig"] = {"tagger": {"sourceCode": "function envoy_on_request(h)\n  local x = = 1\nend\n"}}
    proxy.write_config(cfg)
    deadline = time.time() + 10
    while proxy.config_dump()["rejectedUpdates"] < 1 and time.time() < deadline:
        time.sleep(0.05)
    why = proxy.config_dump()["lastRejection"]
    assert "routeConfigs[0].virtualHosts[0].routes[0].perFilterConfig.tagger.sourceCode" in why
    assert "line 2" in why
    route["perFilterConfig"] = {"meshd.lua": {"disabled": "yes"}}
    proxy.write_config(cfg)
    while proxy.config_dump()["rejectedUpdates"] < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert "perFilterConfig.meshd.lua.disabled" in proxy.config_dump()["lastRejection"]
    assert proxy.config_dump()["version"] == 1


CALL_AUTH = """
function envoy_on_request(h)
  local headers, body = h:httpCall("auth", {
    [":method"] = "GET", [":path"] = "/check", [":authority"] = "auth.local", ["x-asked-by"] = {"lua", "meshd"},
  }, nil, 3000)
  local hd = h:headers()
  hd:replace("x-auth-status", headers[":status"])
  hd:replace("x-auth-service", headers["x-service"])
  hd:replace("x-auth-body", tostring(body ~= nil and body:find('"service": "auth"', 1, true) ~= nil))
  hd:replace("x-auth-asked-by", tostring(body ~= nil and body:find('"x-asked-by": "lua"', 1, true) ~= nil))
end
"""


def test_http_call_sync_copies_a_response_header_into_the_request(mesh):
    app, auth = mesh.upstream("app"), mesh.upstream("auth")
    port = free_port()
    mesh.proxy(lua_config(port, {"app": app, "auth": auth}, [plugin("authcall", CALL_AUTH)]))
    for _ in range(3):  # pooled connections are reused
        h, service = echoed(port)
        assert service == "app"
        assert h["x-auth-status"] == "200"
        assert h["x-auth-service"] == "auth"
        assert h["x-auth-body"] == "true"
        assert h["x-auth-asked-by"] == "true"


def test_http_call_with_a_request_body_arriving_meanwhile(mesh):
    app, auth = mesh.upstream("app"), mesh.upstream("auth")
    port = free_port()
    code = """
function envoy_on_request(h)
  local headers = h:httpCall("auth", {[":method"] = "GET", [":path"] = "/delay/200", [":authority"] = "auth"},
                             nil, {timeout_ms = 3000})
  local b = h:body()
  b:setBytes(b:getBytes(0, b:length()) .. "+" .. headers["x-service"])
end
"""
    mesh.proxy(lua_config(port, {"app": app, "auth": auth}, [plugin("bodycall", code)]))
    status, _, body = request(port, "/echo", method="POST", body=b"hello" * 1000)
    assert status == 200
    assert body == "hello" * 1000 + "+auth"


def test_http_call_while_holding_a_chunk_a_buffered_body_or_the_response(mesh):
    app, auth = mesh.upstream("app"), mesh.upstream("auth")
    port = free_port()
    code = """
local function ask(h)
  local headers = h:httpCall("auth", {[":method"] = "GET", [":path"] = "/delay/50", [":authority"] = "auth"}, nil, 3000)
  return headers["x-service"]
end
function envoy_on_request(h)
  local mode = h:headers():get("x-mode")
  if mode == "chunks" then
    for chunk in h:bodyChunks() do
      local who = ask(h)  -- the chunk waits here meanwhile (same length: content-length went on)
      chunk:setBytes(chunk:getBytes(0, chunk:length()):upper())
      h:streamInfo():dynamicMetadata():set("lua", "who", who)
    end
  elseif mode == "body-then-call" then
    local b = h:body()
    local who = ask(h)
    b:setBytes(b:getBytes(0, b:length()) .. "|" .. who)
    h:headers():replace("x-who", who)
  end
end
function envoy_on_response(h)
  local md = h:streamInfo():dynamicMetadata():get("lua")
  if md then h:headers():replace("x-who", md.who) end
  if h:headers():get("x-service") == "app" then
    h:headers():replace("x-response-asked", ask(h))
    local b = h:body()
    b:setBytes(b:getBytes(0, b:length()) .. "|response")
  end
end
"""
    mesh.proxy(lua_config(port, {"app": app, "auth": auth}, [plugin("modes", code)]))
    status, headers, body = request(port, "/echo", method="POST", headers={"x-mode": "chunks"}, body=b"abc")
    assert status == 200 and body == "ABC" and headers["x-who"] == "auth"
    status, headers, body = request(port, "/echo", method="POST", headers={"x-mode": "body-then-call"}, body=b"abc")
    assert status == 200 and body == "abc|auth"
    status, headers, body = request(port, "/")
    assert status == 200 and headers["x-response-asked"] == "auth"
    seen, tail = body.rsplit("|", 1)
    assert tail == "response" and json.loads(seen)["service"] == "app"


def test_http_call_errors_and_failures(mesh):
    app, auth = mesh.upstream("app"), mesh.upstream("auth")
    dead = free_port()  # nothing listens there
    port = free_port()
    code = """
function envoy_on_request(h)
  local hd = h:headers()
  local mode = hd:get("x-mode")
  if mode == "unknown" then
    h:httpCall("nope", {[":method"] = "GET", [":path"] = "/", [":authority"] = "x"}, nil, 1000)
  elseif mode == "nopath" then
    local ok, err = pcall(h.httpCall, h, "auth", {[":method"] = "GET", [":authority"] = "x"}, nil, 1000)
    hd:replace("x-err", err)
  elseif mode == "badopt" then
    local ok, err = pcall(h.httpCall, h, "auth", {[":method"] = "GET", [":path"] = "/", [":authority"] = "x"}, nil,
                          {timeout_ms = 100, colour = "blue"})
    hd:replace("x-err", tostring(err))
    ok, err = pcall(h.httpCall, h, "auth", {[":method"] = "GET", [":path"] = "/", [":authority"] = "x"}, nil, -1)
    hd:replace("x-err2", tostring(err))
  else
    local cluster = mode == "dead" and "dead" or "auth"
    local headers, body = h:httpCall(cluster, {[":method"] = "GET", [":path"] = "/delay/3000", [":authority"] = "x"},
                                     nil, {timeout_ms = 300})
    hd:replace("x-call-status", headers[":status"])
    hd:replace("x-call-body", tostring(body))
  end
end
"""
    proxy = mesh.proxy(lua_config(port, {"app": app, "auth": auth, "dead": dead}, [plugin("caller", code)]))
    errors = 'meshd_lua_errors_total{plugin="caller"}'
    h, _ = echoed(port, headers={"x-mode": "unknown"})  # FAIL_OPEN: the request goes on
    assert proxy.stat(errors) == 1
    assert "http call cluster invalid. Must be configured" in proxy.process.stderr()
    h, _ = echoed(port, headers={"x-mode": "nopath"})
    assert "http call headers must include ':path', ':method', and ':authority'" in h["x-err"]
    h, _ = echoed(port, headers={"x-mode": "badopt"})
    assert "colour" in h["x-err"] and "timeout" in h["x-err2"]
    h, _ = echoed(port, headers={"x-mode": "dead"})
    assert h["x-call-status"] == "503" and h["x-call-body"] == "upstream failure"
    started = time.time()
    h, _ = echoed(port, headers={"x-mode": "slow"})  # the call times out after 300 ms
    assert h["x-call-status"] == "503" and h["x-call-body"] == "upstream failure"
    assert time.time() - started < 2.5
    assert proxy.stat(errors) == 1


def test_http_call_async_returns_at_once(mesh):
    app, auth = mesh.upstream("app"), mesh.upstream("auth")
    port = free_port()
    code = """
function envoy_on_request(h)
  local r = h:httpCall("auth", {[":method"] = "POST", [":path"] = "/delay/1500", [":authority"] = "auth"},
                       "payload", {asynchronous = true, timeout_ms = 5000})
  h:headers():replace("x-async-returned", tostring(r))
end
"""
    proxy = mesh.proxy(lua_config(port, {"app": app, "auth": auth}, [plugin("fire", code)]))
    started = time.time()
    h, _ = echoed(port)
    assert time.time() - started < 1.0
    assert h["x-async-returned"] == "nil"
    assert proxy.stat('meshd_lua_errors_total{plugin="fire"}') == 0
    # Positional form: (cluster, headers, body, timeout_ms, asynchronous).
    proxy.write_config(lua_config(port, {"app": app, "auth": auth}, [plugin("fire", code.replace(
        '{asynchronous = true, timeout_ms = 5000}', '5000, true'))]))
    proxy.wait_version(2)
    started = time.time()
    h, _ = echoed(port)
    assert time.time() - started < 1.0 and h["x-async-returned"] == "nil"


def test_clear_route_cache_reselects_from_modified_headers(mesh):
    a, b = mesh.upstream("a"), mesh.upstream("b")
    port = free_port()
    vhosts = [{"name": "all", "domains": ["*"], "routes": [
        {"name": "canary", "match": {"prefix": "/", "headers": [{"name": "x-canary", "exact": "1"}]},
         "route": {"cluster": "b"}},
        {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "a"}}]}]
    code = """
function envoy_on_request(h)
  local hd = h:headers()
  hd:replace("x-route-before", h:streamInfo():routeName())  -- selects (and caches) the route now
  hd:replace("x-canary", "1")
  if hd:get("x-clear") then h:clearRouteCache() end
  hd:replace("x-route-after", h:streamInfo():routeName())
end
function envoy_on_response(h)
  h:headers():replace("x-final-route", h:streamInfo():routeName())
end
"""
    mesh.proxy(lua_config(port, {"a": a, "b": b}, [plugin("steer", code)], vhosts=vhosts))
    status, rh, body = request(port, headers={"x-clear": "1"})
    seen = json.loads(body)
    assert seen["service"] == "b"
    assert seen["headers"]["x-route-before"] == "default"
    assert seen["headers"]["x-route-after"] == "canary"
    assert rh["x-final-route"] == "canary"
    # Without clearRouteCache the route chosen before the edit stays.
    status, rh, body = request(port)
    assert json.loads(body)["service"] == "a" and rh["x-final-route"] == "default"


def test_compile_error_is_refused_with_its_line_and_the_old_config_serves(mesh):
    app = mesh.upstream("app")
    port = free_port()
    good = lua_config(port, {"app": app}, [header_plugin("tagger", "x-tag", "v1")])
    proxy = mesh.proxy(good)
    bad = lua_config(port, {"app": app}, [
        header_plugin("tagger", "x-tag", "v2"),
        plugin("broken", "-- line 1\nfunction envoy_on_request(h)\n  h:headers():add('a' 'b')\nend\n")])
    proxy.write_config(bad)
    deadline = time.time() + 10
    while proxy.config_dump()["rejectedUpdates"] < 1 and time.time() < deadline:
        time.sleep(0.05)
    dump = proxy.config_dump()
    assert dump["version"] == 1
    why = dump["lastRejection"]
    assert "luaPlugins[1].inlineCode" in why and "broken" in why and "line 3" in why, why
    h, _ = echoed(port)
    assert h["x-tag"] == "v1"


def swap_config(port, a, version):
    code = f"""
function envoy_on_response(h)
  h:headers():replace("x-plugin-version", "{version}")
end
"""
    return lua_config(port, {"a": a}, [plugin("versioned", code)])




def test_fifty_plugin_swaps_under_load_lose_nothing(mesh):
    a = mesh.upstream("a")
    port = free_port()
    proxy = mesh.proxy(swap_config(port, a, 0))
    stop = threading.Event()
    results = []
    deadline = time.time() + 120
    def classify(r):
        return r.status if r.getheader("x-plugin-version") else "no version header"

    workers = [threading.Thread(target=bounded_load, args=(port, stop, results, deadline, classify)) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        for i in range(1, 51):
            proxy.write_config(swap_config(port, a, i))
            proxy.wait_version(i + 1)
            # The next request runs the new version.
            status, headers, _ = request(port)
            assert status == 200
            assert headers["x-plugin-version"] == str(i)
    finally:
        stop.set()
        for w in workers:
            w.join()
    failures = [r for r in results if r != 200]
    assert len(results) > 200
    assert failures == []
    assert proxy.config_dump()["version"] == 51
    # Old versions' VMs are gone with their last stream: at most one VM per event loop is left.
    deadline = time.time() + 5
    while proxy.stat("meshd_lua_vms") > 2 and time.time() < deadline:
        time.sleep(0.05)
    assert 1 <= proxy.stat("meshd_lua_vms") <= 2


def test_sandbox_cuts_infinite_loops_and_hides_io(mesh):
    app = mesh.upstream("app")
    port = free_port()
    loop = "function envoy_on_request(h) if h:headers():get('x-spin') then while true do end end end"
    plugins = [
        plugin("spin-open", loop, limits={"instructions": 500000}),
        plugin("spin-closed", loop, failStrategy="FAIL_CLOSE", limits={"instructions": 500000},
               attachTo={"routes": ["closed"]}),
        plugin("peek", """
function envoy_on_request(h)
  h:headers():replace("x-io", tostring(io) .. "," .. tostring(os.execute) .. "," .. tostring(package))
  local ok = pcall(function() return io.open("/etc/passwd") end)
  h:headers():replace("x-io-open", tostring(ok))
  -- require loads only the plugin's own modules, never a library or a file.
  h:headers():replace("x-require-io", tostring(pcall(require, "io")))
end
"""),
    ]
    vhosts = [{"name": "all", "domains": ["*"], "routes": [
        {"name": "closed", "match": {"prefix": "/closed"}, "route": {"cluster": "app"}},
        {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]
    proxy = mesh.proxy(lua_config(port, {"app": app}, plugins, vhosts=vhosts))
    h, _ = echoed(port, headers={"x-spin": "1"})  # FAIL_OPEN: cut, the request goes on
    assert h["x-io"] == "nil,nil,nil" and h["x-io-open"] == "false" and h["x-require-io"] == "false"
    assert proxy.stat('meshd_lua_errors_total{plugin="spin-open"}') == 1
    status, _, _ = request(port, "/closed", headers={"x-spin": "1"})
    assert status == 503  # a limit, not a script error: the plugin is unavailable
    assert proxy.stat('meshd_lua_errors_total{plugin="spin-closed"}') == 1
    assert "instruction budget exceeded" in proxy.process.stderr()
    # The VMs still serve afterwards.
    status, _, _ = request(port, "/closed")
    assert status == 200


def test_posted_config_adds_a_listener_with_a_plugin(mesh):
    """POST /config builds and binds off the admin's event loop."""
    app = mesh.upstream("app")
    port, port2 = free_port(), free_port()
    cfg = lua_config(port, {"app": app}, [])
    proxy = mesh.proxy(cfg)
    cfg["listeners"].append(dict(cfg["listeners"][0], name="second", port=port2))
    cfg["luaPlugins"] = [header_plugin("second-only", "x-second", "yes", attachTo={"listeners": ["second"]})]
    status, body = proxy.admin("/config", "POST", json.dumps(cfg).encode())
    assert status == 200, body
    h, _ = echoed(port2)
    assert h["x-second"] == "yes"
    h, _ = echoed(port)
    assert "x-second" not in h


def test_http_call_per_chunk_on_large_bodies_both_ways(mesh):
    """Each chunk waits for a call; what follows waits behind it (with backpressure), nothing is lost."""
    app, auth = mesh.upstream("app"), mesh.upstream("auth")
    port = free_port()
    code = """
local function count(h, direction)
  local n = 0
  for chunk in h:bodyChunks() do
    local headers = h:httpCall("auth", {[":method"] = "GET", [":path"] = "/status/204", [":authority"] = "auth"},
                               nil, 3000)
    if headers[":status"] == "204" and chunk:length() > 0 then
      n = n + chunk:length()
      -- Logged while this chunk is still held: the upstream cannot have it yet.
      h:logWarn(direction .. " bytes so far " .. n)
    end
  end
end
function envoy_on_request(h)
  if h:headers():get(":method") == "POST" then count(h, "request") end
end
function envoy_on_response(h)
  if h:headers():get("content-type") == "application/octet-stream" then count(h, "response") end
end
"""
    proxy = mesh.proxy(lua_config(port, {"app": app, "auth": auth}, [plugin("perchunk", code)]))
    size = 4 << 20
    status, _, body = request(port, f"/bytes/{size}", timeout=60)
    assert status == 200 and len(body) == size
    status, _, body = request(port, "/sink", method="POST", body=b"y" * size, timeout=60)
    assert status == 200 and body.strip() == str(size)
    assert proxy.stat('meshd_lua_errors_total{plugin="perchunk"}') == 0
    # Each chunk waited for its call before going on (the last, empty one may be cut short
    # when the upstream has answered, as the whole body had reached it).
    logs = proxy.process.stderr()
    for direction in ("response", "request"):
        counts = [int(n) for n in re.findall(direction + r" bytes so far (\d+)", logs)]
        assert len(counts) > 1 and max(counts) == size, logs[-2000:]
