"""Config swaps while traffic flows: nothing fails, the new config is used, bad configs are refused."""
import http.client
import json
import threading
import time

from conftest import bounded_load, curl, free_port, simple_config


def config_with_tag(port, a, b, tag, cluster):
    return simple_config(port, a, filters=[{"name": "meshd.header_mutation",
                                           "config": {"response": {"set": {"x-config-tag": str(tag)}}}}],
                         routes=[{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": cluster}}],
                         clusters=[{"name": "a", "endpoints": [{"address": "127.0.0.1", "port": a}]},
                                   {"name": "b", "endpoints": [{"address": "127.0.0.1", "port": b}]}])




def test_fifty_swaps_under_load_lose_nothing(mesh):
    a, b = mesh.upstream("a"), mesh.upstream("b")
    port = free_port()
    proxy = mesh.proxy(config_with_tag(port, a, b, 0, "a"))
    stop = threading.Event()
    results = []
    deadline = time.time() + 90
    workers = [threading.Thread(target=bounded_load, args=(port, stop, results, deadline)) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        for i in range(1, 51):
            cluster = "b" if i % 2 else "a"
            proxy.write_config(config_with_tag(port, a, b, i, cluster))
            proxy.wait_version(i + 1)
            # The new config is what the next request sees.
            r = curl("-i", f"http://127.0.0.1:{port}/")
            text = r.stdout.decode()
            assert f"x-config-tag: {i}" in text
            assert json.loads(text.split("\r\n\r\n", 1)[1])["service"] == cluster
    finally:
        stop.set()
        for w in workers:
            w.join()
    failures = [r for r in results if r != 200]
    assert len(results) > 200
    assert failures == []
    assert proxy.config_dump()["version"] == 51


def test_invalid_configs_are_refused_and_the_last_good_keeps_serving(mesh):
    a, b = mesh.upstream("a"), mesh.upstream("b")
    port = free_port()
    proxy = mesh.proxy(config_with_tag(port, a, b, 0, "a"))
    good = open(proxy.config_path).read()
    bad_cases = {
        "not yaml": "listeners: [unclosed\n",
        "bad regex": good.replace("prefix: /", "safeRegex: '(['"),
        "unknown cluster": good.replace("cluster: a", "cluster: nope"),
        "unknown filter": good.replace("meshd.header_mutation", "meshd.nope"),
    }
    for i, (name, text) in enumerate(bad_cases.items(), start=1):
        with open(proxy.config_path, "w") as f:
            f.write(text)
        deadline = time.time() + 10
        while proxy.config_dump()["rejectedUpdates"] < i and time.time() < deadline:
            time.sleep(0.05)
        dump = proxy.config_dump()
        assert dump["rejectedUpdates"] == i, name
        assert dump["version"] == 1, name
        assert dump["lastRejection"], name
        assert curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/").stdout == b"200", name
    assert "safeRegex" in proxy.process.stderr() and "unknown cluster 'nope'" in proxy.process.stderr()
    # POST /config applies a config directly; a bad one is answered 400 with the reason.
    status, body = proxy.admin("/config", "POST", b"clusters: 3\n")
    assert status == 400 and "refused" in body
    status, body = proxy.admin("/config", "POST", good.replace("x-config-tag: '0'", "x-config-tag: posted").encode())
    assert status == 200, body
    assert "x-config-tag: posted" in curl("-i", f"http://127.0.0.1:{port}/").stdout.decode()


def test_listener_added_and_removed_by_swap(mesh):
    a, b = mesh.upstream("a"), mesh.upstream("b")
    port, port2 = free_port(), free_port()
    cfg = config_with_tag(port, a, b, 0, "a")
    proxy = mesh.proxy(cfg)
    second = dict(cfg["listeners"][0], name="second", port=port2)
    cfg["listeners"].append(second)
    proxy.write_config(cfg)
    proxy.wait_version(2)
    assert curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port2}/").stdout == b"200"
    cfg["listeners"].pop()
    proxy.write_config(cfg)
    proxy.wait_version(3)
    assert curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port2}/").returncode != 0
