"""Outlier detection (Envoy's consecutive-errors detectors): a failing endpoint leaves the
load balancing set as soon as its errors in a row reach the threshold, comes back after the
ejection time, and no more than maxEjectionPercent of the endpoints are ever out. The proxy
reports ejections on /clusters, in its stats and in `meshd proxy-config endpoints`."""
import subprocess
import time

from conftest import MESHD, free_port
from mesh_harness import wait_until
from test_retries_mirror import scripted, seen, send


def config(port, ups, outlier):
    return {
        "listeners": [{"name": "main", "address": "127.0.0.1", "port": port, "routeConfig": "main"}],
        "routeConfigs": [{"name": "main", "virtualHosts": [{"name": "all", "domains": ["*"], "routes": [
            {"name": "all", "match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]}],
        "clusters": [{"name": "app", "lbPolicy": "ROUND_ROBIN", "outlierDetection": outlier,
                      "endpoints": [{"address": "127.0.0.1", "port": p} for p in ups]}],
    }


def health(proxy):
    """{"127.0.0.1:PORT": flags} from the proxy's /clusters page."""
    out = {}
    for line in proxy.admin("/clusters")[1].splitlines():
        fields = line.split("::")
        if len(fields) == 4 and fields[2] == "health_flags":
            out[fields[1]] = fields[3]
    return out


def endpoints_table(proxy):
    out = subprocess.run([MESHD, "proxy-config", "endpoints", f"127.0.0.1:{proxy.admin_port}"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return [line.split() for line in out.stdout.splitlines()[1:] if line.strip()]


def test_failing_endpoint_is_ejected_then_brought_back_after_the_ejection_time(mesh):
    good = [scripted(mesh, "good1"), scripted(mesh, "good2")]
    bad = scripted(mesh, "bad", "fail")
    port = free_port()
    proxy = mesh.proxy(config(port, good + [bad], {"consecutive5xx": 3, "intervalMs": 200,
                                                   "baseEjectionTimeMs": 3000, "maxEjectionPercent": 50}))
    bad_host = f"127.0.0.1:{bad}"
    assert health(proxy)[bad_host] == "healthy"
    # Round robin over three: the third failure in a row at `bad` ejects it at once.
    statuses = []
    for i in range(30):
        statuses.append(send(port, f"/r{i}")[0])
        if proxy.stat("meshd_outlier_detection_ejections_total") == 1:
            break
    ejected_at = time.monotonic()
    assert proxy.stat("meshd_outlier_detection_ejections_total") == 1, statuses
    assert len(seen(bad)) == 3 and statuses.count(503) == 3, statuses
    assert health(proxy)[bad_host] == "/failed_outlier_check"
    assert proxy.stat("meshd_outlier_detection_ejections_active") == 1
    assert proxy.stat("meshd_outlier_detection_ejections_enforced_consecutive_5xx_total") == 1
    rows = endpoints_table(proxy)
    assert [bad_host, "EJECTED", "app"] in rows and [f"127.0.0.1:{good[0]}", "HEALTHY", "app"] in rows, rows

    # While out, nothing reaches it.
    for i in range(10):
        assert send(port, f"/while-out/{i}")[0] == 200
    assert len(seen(bad)) == 3

    # Back after the base ejection time (3 s), at the next sweep (every 200 ms).
    back = wait_until(lambda: health(proxy)[bad_host] == "healthy" and time.monotonic(), 20, what="endpoint back")
    assert back - ejected_at >= 2.9, back - ejected_at
    assert proxy.stat("meshd_outlier_detection_ejections_active") == 0
    for i in range(6):
        send(port, f"/after/{i}")
    assert len(seen(bad)) > 3


def test_never_ejects_more_than_max_ejection_percent(mesh):
    ups = [scripted(mesh, f"bad{i}", "fail") for i in range(4)]
    port = free_port()
    proxy = mesh.proxy(config(port, ups, {"consecutive5xx": 1, "intervalMs": 200, "baseEjectionTimeMs": 60000,
                                          "maxEjectionPercent": 50}))
    for i in range(40):
        assert send(port, f"/r{i}")[0] == 503
    flags = health(proxy)
    assert sorted(flags.values()) == ["/failed_outlier_check"] * 2 + ["healthy"] * 2, flags
    assert proxy.stat("meshd_outlier_detection_ejections_active") == 2
    assert proxy.stat("meshd_outlier_detection_ejections_total") == 2
    assert proxy.stat("meshd_outlier_detection_ejections_overflow_total") > 0
    # The two left in service take every request.
    in_service = {h for h, f in flags.items() if f == "healthy"}
    before = {p: len(seen(p)) for p in ups}
    for i in range(10):
        send(port, f"/more/{i}")
    grew = {f"127.0.0.1:{p}" for p in ups if len(seen(p)) > before[p]}
    assert grew == in_service, (grew, in_service)


def test_slow_start_gives_a_new_endpoint_a_small_share_first(mesh):
    """Envoy's slow start (Istio's warmup): an endpoint added while traffic flows starts at
    minWeightPercent of a warm one's share and grows over the window."""
    old, new = scripted(mesh, "old"), scripted(mesh, "new")
    port = free_port()

    def cfg(ups, window_ms):
        c = config(port, ups, None)
        c["clusters"][0].pop("outlierDetection")
        if window_ms:
            c["clusters"][0]["slowStart"] = {"windowMs": window_ms, "minWeightPercent": 10}
        return c
    proxy = mesh.proxy(cfg([old], 60_000), concurrency=1)
    for i in range(20):
        assert send(port, f"/warm/{i}")[0] == 200
    proxy.write_config(cfg([old, new], 60_000))
    proxy.wait_version(2)
    before = len(seen(new))
    for i in range(300):
        assert send(port, f"/after/{i}")[0] == 200
    share = (len(seen(new)) - before) / 300
    # At most a few seconds into a minute's window, the new endpoint's weight is 10 % (a
    # share near 9 %); without slow start round robin would give it half.
    assert 0 < share < 0.3, share

    # Without slow start: an even split.
    proxy.write_config(cfg([old, new], 0))
    proxy.wait_version(3)
    before = len(seen(new))
    for i in range(100):
        send(port, f"/even/{i}")
    assert 40 <= len(seen(new)) - before <= 60
