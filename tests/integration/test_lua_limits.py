"""Plugins must not be able to stall a loop: looping plugins get their failStrategy answer
within their time bound while the admin port and other listeners on the same event loop
keep answering; SIGTERM ends a proxy whose loop is stuck; what a plugin makes the host
allocate, its httpCall()s in flight and other requests' coroutines are out of its reach."""
import json
import signal
import socket
import threading
import time

from conftest import free_port, wait_for_port
from test_lua_plugins import plugin, request

# Loops that catch the limit's error where the old budget could not yield, and a pattern
# that backtracks for minutes inside one C call.
SPINS = {
    "gsub": ('string.gsub("x", ".", function() while true do pcall(function() while true do end end) end end)',
             "FAIL_CLOSE", 503),
    "xpcall": ("table.sort({3, 1, 2}, function(a, b) while true do "
               "xpcall(function() while true do end end, function(e) return e end) end end)", "FAIL_CLOSE", 503),
    "gc": ("setmetatable({}, {__gc = function() while true do end end}); collectgarbage()", "FAIL_CLOSE", 500),
    "pattern": ('string.rep("a", 300):find(string.rep("a*", 4) .. "b")', "FAIL_OPEN", 200),
}


def two_listener_config(main_port, other_port, app_port, plugins, shapes=()):
    """`main` has a route per shape (and a default); `other` shares the cluster, no plugins."""
    routes = [{"name": s, "match": {"prefix": f"/{s}"}, "route": {"cluster": "app"}} for s in shapes]
    routes.append({"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "app"}})
    return {
        "listeners": [{"name": "main", "address": "127.0.0.1", "port": main_port, "routeConfig": "rc"},
                      {"name": "other", "address": "127.0.0.1", "port": other_port, "routeConfig": "rc-other"}],
        "routeConfigs": [
            {"name": "rc", "virtualHosts": [{"name": "all", "domains": ["*"], "routes": routes}]},
            {"name": "rc-other", "virtualHosts": [{"name": "other", "domains": ["*"], "routes": [
                {"name": "other-default", "match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]}],
        "clusters": [{"name": "app", "connectTimeoutMs": 1000, "endpoints": [{"address": "127.0.0.1", "port": app_port}]}],
        "luaPlugins": plugins,
    }


def timed(fn):
    start = time.time()
    try:
        result = fn()
    except Exception as e:  # a timeout is a result here
        result = repr(e)
    return result, time.time() - start


def test_looping_plugins_answer_promptly_while_the_loop_keeps_serving(mesh):
    app = mesh.upstream("app")
    main, other = free_port(), free_port()
    plugins = [plugin(f"spin-{s}", f"function envoy_on_request(h)\n{code}\nend", failStrategy=strategy,
                      attachTo={"routes": [s]}) for s, (code, strategy, _) in SPINS.items()]
    # Top-level code that loops: it runs when the loop first makes the plugin's VM.
    plugins.append(plugin("spin-top", "while true do pcall(function() while true do end end) end\n"
                                      "function envoy_on_request(h) end", failStrategy="FAIL_CLOSE",
                          attachTo={"routes": ["top"]}))
    shapes = list(SPINS) + ["top"]
    # One event loop: the spinning plugin, the admin port and the other listener share it.
    proxy = mesh.proxy(two_listener_config(main, other, app, plugins, shapes), concurrency=1)
    expected = {s: status for s, (_, _, status) in SPINS.items()}
    expected["top"] = 503
    for shape in shapes:
        spin = {}
        t = threading.Thread(target=lambda s=shape: spin.update(r=timed(lambda: request(main, f"/{s}", timeout=10))))
        t.start()
        ready, ready_s = timed(lambda: proxy.admin("/ready"))
        seen, other_s = timed(lambda: request(other, "/", timeout=10))
        t.join(15)
        assert not t.is_alive()
        answer, spin_s = spin["r"]
        assert isinstance(answer, tuple), (shape, answer, spin_s)
        status, _, body = answer
        assert status == expected[shape], (shape, status, body)
        assert spin_s < 2, (shape, spin_s)
        assert ready == (200, "LIVE\n") and ready_s < 2, (shape, ready, ready_s)
        assert seen[0] == 200 and other_s < 2, (shape, seen, other_s)
        assert proxy.stat(f'meshd_lua_errors_total{{plugin="spin-{shape}"}}') == 1, shape
    err = proxy.process.stderr()
    assert "time budget exceeded (100 ms)" in err
    assert "__gc metamethods are not allowed" in err


def test_sigterm_ends_a_proxy_whose_loop_is_stuck(mesh):
    """A plugin allowed to run for ten minutes holds its loop; the drain cannot finish, and
    the process still ends soon after the drain timeout."""
    app = mesh.upstream("app")
    main, other = free_port(), free_port()
    stuck = plugin("stuck", "function envoy_on_request(h)\n" + SPINS["gsub"][0] + "\nend",
                   limits={"instructions": 10 ** 15, "maxRunMs": 600000})
    proxy = mesh.proxy(two_listener_config(main, other, app, [stuck]), concurrency=1,
                       extra_args=["--drain-timeout", "1"])
    t = threading.Thread(target=lambda: timed(lambda: request(main, "/", timeout=5)), daemon=True)
    t.start()
    # The loop is stuck once the admin port no longer answers.
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", proxy.admin_port), timeout=0.5) as s:
                s.sendall(b"GET /ready HTTP/1.1\r\nhost: x\r\n\r\n")
                s.settimeout(0.5)
                if not s.recv(100):
                    break
        except OSError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the plugin never held the loop")
    start = time.time()
    proxy.process.proc.send_signal(signal.SIGTERM)
    code = proxy.process.proc.wait(timeout=15)
    took = time.time() - start
    assert took < 1 + 2 + 1.5, took  # drain timeout + grace + slack
    assert code == 1
    assert "shutdown did not finish" in proxy.process.stderr()


def test_host_allocations_are_bounded(mesh):
    app = mesh.upstream("app")
    port = free_port()
    code = """
function envoy_on_request(h)
  local hd = h:headers()
  local big = string.rep("x", 1 << 20)
  local t = {}
  for i = 1, 600 do t[i] = big end
  local ok, err = pcall(meshd.json.encode, t)
  hd:add("x-encode", tostring(ok) .. " " .. (ok and #err or err))
  local m = h:streamInfo():dynamicMetadata()
  local n = 0
  for i = 1, 300 do if pcall(m.set, m, "ns", "k" .. i, big) then n = n + 1 end end
  hd:add("x-metadata", n)
  local d = meshd.shared("big")
  for i = 1, 350 do d:set("k" .. i, big) end
  local kept = 0
  for i = 1, 350 do if d:get("k" .. i) then kept = kept + 1 end end
  hd:add("x-dict", kept .. " " .. tostring(d:get("k350") ~= nil) .. " " .. tostring(select(2, pcall(d.set, d, "x", big:rep(5)))))
end
"""
    limits = {"sharedDicts": {"big": 4 << 20}, "maxRunMs": 5000}
    proxy = mesh.proxy(two_listener_config(port, free_port(), app, [plugin("alloc", code, limits=limits)]),
                       concurrency=1)

    def peak_mib():
        with open(f"/proc/{proxy.process.proc.pid}/status") as f:
            return int(next(l for l in f if l.startswith("VmHWM")).split()[1]) // 1024

    before = peak_mib()
    status, _, body = request(port, "/", timeout=30)
    assert status == 200, body
    h = json.loads(body)["headers"]
    assert h["x-encode"].startswith("false json.encode: result too large"), h["x-encode"]
    assert h["x-metadata"] == "0"  # 1 MiB is past the 64 KiB per stream
    assert h["x-dict"] == ("3 true shared dict 'big': an entry of 5242945 bytes does not fit its capacity "
                           "of 4194304 bytes"), h["x-dict"]
    # 600 MiB of JSON, 300 MiB of metadata and 350 MiB of dictionary before.
    assert peak_mib() - before < 100, (before, peak_mib())


def test_http_calls_in_flight_are_bounded(mesh):
    app = mesh.upstream("app")
    main, other = free_port(), free_port()
    code = """
function envoy_on_request(h)
  local started, err = 0, "none"
  for i = 1, 200 do
    local ok, e = pcall(h.httpCall, h, "app", {[":method"] = "GET", [":path"] = "/delay/1500", [":authority"] = "app"},
                        nil, 0, true)
    if ok then started = started + 1 else err = e; break end
  end
  h:headers():add("x-calls", started .. " " .. err)
end
"""
    proxy = mesh.proxy(two_listener_config(main, other, app, [plugin("fanout", code, attachTo={"listeners": ["main"]})]),
                       concurrency=1)
    status, _, body = request(main, "/")
    assert status == 200, body
    assert json.loads(body)["headers"]["x-calls"] == \
        "16 too many httpCall()s in flight (limits.maxPendingCallsPerStream = 16)"
    # The other listener's requests to the same cluster are not starved meanwhile.
    status, _, _ = request(other, "/")
    assert status == 200
    assert proxy.stat('meshd_lua_errors_total{plugin="fanout"}') == 0


def test_a_parked_coroutine_is_resumed_only_by_its_own_request(mesh):
    app = mesh.upstream("app")
    port = free_port()
    code = """
function envoy_on_request(h)
  local hd = h:headers()
  if hd:get("x-park") then
    parked = coroutine.running()
    local body = h:body()
    hd:add("x-body", type(body) == "string" and ("string:" .. body) or ("buffer:" .. body:getBytes(0, body:length())))
  elseif parked then
    local ok, err = coroutine.resume(parked, "from B")
    hd:add("x-resume", tostring(ok) .. ": " .. tostring(err))
  else
    hd:add("x-resume", "nothing parked yet")
  end
end
"""
    mesh.proxy(two_listener_config(port, free_port(), app, [plugin("park", code)]), concurrency=1)
    a = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        a.sendall(b"POST / HTTP/1.1\r\nhost: x\r\nx-park: 1\r\ncontent-length: 8\r\n\r\n")
        # B, once A has parked in body().
        deadline = time.time() + 10
        while True:
            status, _, body = request(port, "/")
            assert status == 200, body
            resumed = json.loads(body)["headers"]["x-resume"]
            if resumed != "nothing parked yet" or time.time() > deadline:
                break
            time.sleep(0.02)
        assert resumed == "false: cannot resume a request handler's coroutine"
        a.sendall(b"A's body")
        answer = b""
        deadline = time.time() + 10
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            assert time.time() < deadline, answer
            chunk = a.recv(65536)
            if not chunk:
                break
            answer += chunk
    finally:
        a.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer
    assert json.loads(payload)["headers"]["x-body"] == "buffer:A's body"
