"""The admin endpoint operators reach for, with Envoy's names, shapes and rules: help, server
info, listeners, clusters, stats (JSON, RE2 filter), config dump by resource, run-time log
levels, health-check fail/ok, listener drain, counter reset and quitquitquit; a mutating page
answers GET with 405."""
import json
import socket
import threading
import time

from conftest import free_port, simple_config
from mesh_harness import http_get, wait_until

MUTATING = ["/healthcheck/fail", "/healthcheck/ok", "/drain_listeners", "/quitquitquit", "/reset_counters",
            "/reload", "/config"]


def get(port, path="/"):
    return http_get(f"http://127.0.0.1:{port}{path}", timeout=15)


def test_help_lists_every_page_and_mutations_need_post(mesh):
    up = mesh.upstream()
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up))
    status, text = proxy.admin("/")
    assert status == 200 and text.startswith("admin commands are:\n"), text
    lines = text.splitlines()[1:]
    paths = [l.split(":")[0].strip().replace(" (POST)", "") for l in lines]
    assert paths == sorted(paths)
    for path in ["/", "/certs", "/clusters", "/config_dump", "/drain_listeners", "/healthcheck/fail",
                 "/healthcheck/ok", "/help", "/listeners", "/logging", "/quitquitquit", "/ready", "/reset_counters",
                 "/server_info", "/stats", "/stats/prometheus"]:
        assert path in paths, (path, text)
    assert "  /quitquitquit (POST): exit the server" in lines
    assert proxy.admin("/help") == (200, text)
    # An unknown path: 404, Envoy's "invalid path." and the listing.
    status, body = proxy.admin("/nope")
    assert status == 404 and body.startswith("invalid path. admin commands are:"), body
    # GET on a page that changes state: 405 and no effect.
    for path in MUTATING:
        assert proxy.admin(path) == (405, "Method GET not allowed, POST required."), path
    assert proxy.admin("/logging?level=debug") == (405, "Method GET not allowed, POST required.")
    assert proxy.admin("/ready") == (200, "LIVE\n")
    assert get(port)[0] == 200


def test_server_info_listeners_clusters_stats_and_config_dump(mesh):
    up = mesh.upstream()
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up))
    info = json.loads(proxy.admin("/server_info")[1])
    assert info["state"] == "LIVE"
    assert info["version"].startswith("meshd/")
    assert info["uptime_current_epoch"].endswith("s") and int(info["uptime_current_epoch"][:-1]) >= 0
    assert info["command_line_options"]["concurrency"] == "2"
    assert info["command_line_options"]["config"] == proxy.config_path

    assert proxy.admin("/listeners") == (200, f"main::127.0.0.1:{port}\n")
    listeners = json.loads(proxy.admin("/listeners?format=json")[1])["listener_statuses"]
    assert listeners == [{"name": "main", "local_address": {"socket_address": {"address": "127.0.0.1",
                                                                                "port_value": port}}}]

    for _ in range(5):
        assert get(port)[0] == 200
    assert get(port, "/status/503")[0] == 503
    host = f"app::127.0.0.1:{up}::"
    text = proxy.admin("/clusters")[1]
    for line in ["app::default_priority::max_connections::1024", "app::added_via_api::true", host + "rq_total::6",
                 host + "rq_success::5", host + "rq_error::1", host + "health_flags::healthy", host + "weight::1"]:
        assert line in text.splitlines(), (line, text)
    status = json.loads(proxy.admin("/clusters?format=json")[1])["cluster_statuses"][0]
    assert status["name"] == "app"
    stats = {s["name"]: s["value"] for s in status["host_statuses"][0]["stats"]}
    assert stats["rq_total"] == 6 and stats["rq_error"] == 1
    assert status["host_statuses"][0]["address"]["socket_address"]["port_value"] == up

    # /stats?format=json with an RE2 filter: only the matching series.
    body = json.loads(proxy.admin("/stats?format=json&filter=%5Emeshd_upstream_rq_total")[1])
    assert body["stats"] == [{"name": 'meshd_upstream_rq_total{cluster="app"}', "value": 6}], body
    filtered = proxy.admin("/stats/prometheus?filter=downstream_rq_total")[1]
    assert 'meshd_downstream_rq_total{listener="main"} 6' in filtered and "upstream" not in filtered
    assert proxy.admin("/stats?filter=(")[0] == 400

    clusters = json.loads(proxy.admin("/config_dump?resource=dynamic_active_clusters")[1])
    assert [c["name"] for c in clusters["configs"]] == ["app"]
    routes = json.loads(proxy.admin("/config_dump?resource=dynamic_route_configs")[1])
    assert [r["name"] for r in routes["configs"]] == ["main"]
    assert proxy.admin("/config_dump?resource=nothing")[0] == 404
    assert json.loads(proxy.admin("/config_dump")[1])["config"]["clusters"][0]["name"] == "app"


def test_logging_level_changes_at_run_time(mesh):
    up = mesh.upstream()
    port = free_port()
    config = simple_config(port, up)
    proxy = mesh.proxy(config)
    status, text = proxy.admin("/logging")
    assert status == 200 and "active loggers:\n" in text and "  meshd.proxy: info\n" in text, text

    # At error, a config change is not logged ("config applied" is info) ...
    status, text = proxy.admin("/logging?level=error", method="POST")
    assert status == 200 and "  meshd.proxy: error\n" in text, text
    config["routeConfigs"][0]["virtualHosts"][0]["routes"][0]["name"] = "second"
    proxy.write_config(config)
    proxy.wait_version(2)

    # ... and at debug it is again.
    assert proxy.admin("/logging?meshd.proxy=debug", method="POST")[0] == 200
    config["routeConfigs"][0]["virtualHosts"][0]["routes"][0]["name"] = "third"
    proxy.write_config(config)
    proxy.wait_version(3)
    wait_until(lambda: "config applied" in proxy.process.stderr(), 5, what="info line logged at debug")
    # Version 2's line, had it been written, would be before version 3's.
    assert proxy.process.stderr().count("config applied") == 1, proxy.process.stderr()

    status, text = proxy.admin("/logging?level=loud", method="POST")
    assert status == 400 and text.startswith("error: unknown logger level loud\n"), text
    assert proxy.admin("/logging?nobody=info", method="POST")[0] == 400


def test_healthcheck_fail_makes_readiness_fail_and_ok_restores_it(mesh):
    up = mesh.upstream()
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up))
    assert proxy.admin("/healthcheck/fail", method="POST") == (200, "OK\n")
    assert proxy.admin("/ready") == (503, "DRAINING\n")
    assert json.loads(proxy.admin("/server_info")[1])["state"] == "DRAINING"
    assert get(port)[0] == 200, "traffic still flows: only health checks fail"
    assert proxy.admin("/healthcheck/ok", method="POST") == (200, "OK\n")
    assert proxy.admin("/ready") == (200, "LIVE\n")


def test_reset_counters(mesh):
    up = mesh.upstream()
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up))
    for _ in range(3):
        assert get(port)[0] == 200
    wait_until(lambda: proxy.stat("meshd_downstream_rq_total") == 3, 5, what="requests counted")
    assert proxy.admin("/reset_counters", method="POST") == (200, "OK\n")
    assert proxy.stat("meshd_downstream_rq_total") == 0
    assert proxy.stat("meshd_upstream_rq_total") == 0
    assert proxy.stat("meshd_downstream_cx_total") == 0
    assert get(port)[0] == 200
    wait_until(lambda: proxy.stat("meshd_downstream_rq_total") == 1, 5, what="counting again")


def test_drain_listeners_stops_accepting_and_lets_in_flight_finish(mesh):
    up = mesh.upstream()
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up))
    result = {}
    slow = threading.Thread(target=lambda: result.update(r=get(port, "/delay/1500")))
    slow.start()
    proxy.wait_active_requests(1)
    assert proxy.admin("/drain_listeners", method="POST") == (200, "OK\n")
    assert proxy.admin("/ready") == (503, "DRAINING\n")

    def refused():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return False
        except OSError:
            return True
    wait_until(refused, 5, what="listener closed")
    slow.join(15)
    assert result["r"] == (200, "delayed 1500\n")
    assert proxy.admin("/listeners") == (200, "main::closed\n")


def test_quitquitquit_exits_cleanly(mesh):
    up = mesh.upstream()
    port = free_port()
    proxy = mesh.proxy(simple_config(port, up))
    assert proxy.admin("/quitquitquit", method="POST") == (200, "OK\n")
    deadline = time.time() + 15
    while proxy.process.proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proxy.process.proc.returncode == 0, proxy.process.stderr()[-2000:]
