"""When a mesh may be used: a sidecar or gateway is ready (admin /ready, /healthz/ready on its
health port) only once it holds its config from the control plane; the control plane's
/debug/convergence says when no push is coming. And the control plane's directory watcher acts
only on files that are complete: a slow writer's half file is not refused, and a rename-over
is noticed even when it keeps the old file's size and modification time."""
import os
import time

from conftest import free_port, wait_for_port
from mesh_harness import ControlPlane, http_get, service_entry, tally, wait_until
from test_mesh import gateway_yaml

SERVICES = service_entry("reviews")
REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"


def test_sidecar_and_gateway_are_ready_only_with_their_config(mesh):
    cp = ControlPlane(mesh, {"services.yaml": SERVICES})
    reviews = cp.sidecar("reviews", "v1")
    wait_for_port(reviews.admin)
    wait_for_port(reviews.health)
    # No control plane yet: not ready, and it says why.
    status, body = http_get(f"http://127.0.0.1:{reviews.health}/healthz/ready")
    assert status == 503 and "control plane" in body, (status, body)
    assert http_get(f"http://127.0.0.1:{reviews.admin}/ready")[0] == 503
    assert reviews.config_dump()["config"].get("listeners", []) == []

    cp.start()
    reviews.wait_ready()
    assert http_get(f"http://127.0.0.1:{reviews.admin}/ready") == (200, "LIVE\n")
    assert {l["name"] for l in reviews.config_dump()["config"]["listeners"]} == {"inbound", "outbound"}

    # A sidecar that joins a mesh where reviews is registered: the moment it says ready, its
    # outbound listener routes to reviews (its first config counts every registered workload).
    client = cp.sidecar("client", "v1", with_app=False)
    wait_until(client.ready, timeout=20, interval=0.01, what="client ready")
    assert tally(client.outbound, "reviews", 20) == {"reviews-v1": 20}

    # The same for a gateway: ready means its listener is up and routes.
    port = free_port()
    cp.apply({"gateway.yaml": gateway_yaml(port)}, changed=[])  # the sidecars are not bound to that Gateway
    gateway = cp.gateway()
    wait_until(gateway.ready, timeout=20, interval=0.01, what="gateway ready")
    assert tally(port, "bookinfo.example", 20) == {"reviews-v1": 20}


def test_a_proxy_sent_nothing_is_not_synced_and_the_mesh_not_converged(mesh):
    # A long batching window: a joining sidecar waits 1.5 s for its first config.
    cp = ControlPlane(mesh, {"services.yaml": SERVICES}).start(debounce_ms=1500)
    first = cp.sidecar("reviews", "v1")
    rows = wait_until(cp.syncz, timeout=20, interval=0.01, what="sidecar connected")
    assert rows[0]["sentVersion"] != "" or rows[0]["status"] == "STALE", rows
    convergence = cp.convergence()
    if convergence["proxies"][0]["sentVersion"] == "":  # its join batch is still to come
        assert convergence["pushPending"] and not convergence["converged"], convergence
    cp.wait_ready()
    before = {r["id"]: r["sentVersion"] for r in cp.syncz()}

    # A second sidecar joins: until its batch is pushed the mesh is not converged, although
    # the first sidecar is SYNCED (at a version about to change).
    second = cp.sidecar("reviews", "v2")
    rows = wait_until(lambda: [r for r in cp.syncz() if r["id"] == second.id], timeout=20, interval=0.01,
                      what="second sidecar connected")
    assert rows[0]["sentVersion"] != "" or rows[0]["status"] == "STALE", rows
    convergence = cp.convergence()
    if not [r for r in convergence["proxies"] if r["id"] == second.id and r["sentVersion"]]:
        assert convergence["pushPending"] and not convergence["converged"], convergence
    rows = cp.wait_ready()
    after = {r["id"]: r["sentVersion"] for r in rows}
    assert after[first.id] != before[first.id], "the first sidecar was not sent the new endpoint"
    endpoints = {e["port"] for c in first.config_dump()["config"]["clusters"] if c["name"] == REVIEWS
                 for e in c["endpoints"]}
    assert endpoints == {first.inbound, second.inbound}
    # Converged means no push is coming: the versions stay (one batching window and more).
    deadline = time.time() + 2.0
    while time.time() < deadline:
        assert {r["id"]: r["sentVersion"] for r in cp.syncz()} == after
        time.sleep(0.1)


def test_control_plane_waits_for_a_half_written_file(mesh):
    cp = ControlPlane(mesh, {"services.yaml": SERVICES}).start()
    client = cp.sidecar("client", "v1", with_app=False)
    cp.wait_ready()
    status = cp.config_status()
    before = cp.syncz()
    text = service_entry("ratings")
    cut = text.index("name: http")  # inside the flow sequence of ports: not YAML on its own
    with open(os.path.join(cp.config_dir, "ratings.yaml"), "w") as f:  # not atomic: a slow writer
        f.write(text[:cut])
        f.flush()
        time.sleep(0.4)  # the watcher's quiet time (50 ms) passes several times meanwhile
        f.write(text[cut:])
    wait_until(lambda: cp.config_status()["configVersion"] > status["configVersion"], timeout=10, what="accepted")
    after = cp.config_status()
    assert after["rejected"] == status["rejected"] and after.get("lastRejection") is None, after
    cp.wait_synced(changed_from=before)
    clusters = {c["name"] for c in client.config_dump()["config"]["clusters"]}
    assert "outbound|9080||ratings.default.svc.cluster.local" in clusters, clusters
    assert "config refused" not in cp.process.stderr()


def test_control_plane_sees_a_rename_over_that_keeps_size_and_mtime(mesh):
    cp = ControlPlane(mesh, {"services.yaml": SERVICES, "extra.yaml": service_entry("ratings")}).start()
    client = cp.sidecar("client", "v1", with_app=False)
    cp.wait_ready()
    status = cp.config_status()
    path = os.path.join(cp.config_dir, "extra.yaml")
    old = os.stat(path)
    replacement = service_entry("ratingz")  # same length
    assert len(replacement) == old.st_size
    with open(path + ".tmp", "w") as f:
        f.write(replacement)
    os.utime(path + ".tmp", ns=(old.st_atime_ns, old.st_mtime_ns))  # as `cp -p`, `rsync -t` or tar leave it
    os.replace(path + ".tmp", path)
    assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    wait_until(lambda: cp.config_status()["configVersion"] > status["configVersion"], timeout=10,
               what="rename-over noticed")
    cp.wait_synced()
    clusters = {c["name"] for c in client.config_dump()["config"]["clusters"]}
    assert "outbound|9080||ratingz.default.svc.cluster.local" in clusters, clusters
    assert "outbound|9080||ratings.default.svc.cluster.local" not in clusters, clusters
