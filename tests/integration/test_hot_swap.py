"""Config swaps while traffic flows: nothing fails, the new config is used, bad configs are refused."""
import http.client
import json
import os
import threading
import time

import pytest
import yaml

from conftest import bounded_load, curl, free_port, simple_config


def config_with_tag(port, a, b, tag, cluster):
    return simple_config(port, a, filters=[{"name": "meshd.header_mutation",
                                           "config": {"response": {"set": {"x-config-tag": str(tag)}}}}],
                         routes=[{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": cluster}}],
                         clusters=[{"name": "a", "endpoints": [{"address": "127.0.0.1", "port": a}]},
                                   {"name": "b", "endpoints": [{"address": "127.0.0.1", "port": b}]}])


def tag_seen(port):
    r = curl("-i", f"http://127.0.0.1:{port}/")
    return next((line.split(":", 1)[1].strip() for line in r.stdout.decode().splitlines()
                 if line.lower().startswith("x-config-tag:")), None)


@pytest.mark.parametrize("first_piece", ["nothing", "invalid-yaml", "missing-clusters"])
def test_half_written_config_is_not_refused(mesh, first_piece):
    """A writer that truncates the file and writes it in two pieces, pausing between them for
    longer than the watcher's poll: the first piece alone is an empty file ("wrong type,
    expected Mapping"), not YAML, or a config whose route names a cluster not written yet."""
    a, b = mesh.upstream("a"), mesh.upstream("b")
    port = free_port()
    proxy = mesh.proxy(config_with_tag(port, a, b, 0, "a"))  # polls every 100 ms
    new = config_with_tag(port, a, b, 1, "b")
    if first_piece == "invalid-yaml":
        text = json.dumps(new)  # JSON is YAML; a prefix of it is not
        cut = len(text) // 2
    else:
        text = yaml.safe_dump(new, sort_keys=False)  # listeners, routeConfigs, clusters
        cut = 0 if first_piece == "nothing" else text.index("clusters:")
    with open(proxy.config_path, "w") as f:
        f.write(text[:cut])
        f.flush()
        time.sleep(0.4)  # a slow writer: several polls read the first piece
        f.write(text[cut:])
    proxy.wait_version(2)
    dump = proxy.config_dump()
    assert (dump["rejectedUpdates"], dump.get("lastRejection")) == (0, None), dump
    assert dump["version"] == 2 and tag_seen(port) == "1"
    assert "config refused" not in proxy.process.stderr()


def test_atomic_renames_apply_whole_configs(mesh):
    """Configs written beside the file and renamed over it, quickly one after another: each is
    read whole, none is refused, the last one is what serves."""
    a, b = mesh.upstream("a"), mesh.upstream("b")
    port = free_port()
    proxy = mesh.proxy(config_with_tag(port, a, b, 0, "a"))
    for i in range(1, 21):
        proxy.write_config(config_with_tag(port, a, b, i, "b" if i % 2 else "a"))  # tmp file + os.replace
        time.sleep(0.02)
    deadline = time.time() + 10
    while tag_seen(port) != "20" and time.time() < deadline:
        time.sleep(0.05)
    assert tag_seen(port) == "20"
    dump = proxy.config_dump()
    assert dump["rejectedUpdates"] == 0 and dump.get("lastRejection") is None, dump
    # Rename-over with an editor's backup dance: the file is briefly absent.
    os.rename(proxy.config_path, proxy.config_path + "~")
    proxy.write_config(config_with_tag(port, a, b, 21, "a"))
    os.remove(proxy.config_path + "~")
    deadline = time.time() + 10
    while tag_seen(port) != "21" and time.time() < deadline:
        time.sleep(0.05)
    assert tag_seen(port) == "21"
    assert proxy.config_dump()["rejectedUpdates"] == 0


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
