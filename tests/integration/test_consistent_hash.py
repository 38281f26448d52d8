"""Consistent hash load balancing (RING_HASH / MAGLEV): a key stays on one endpoint, and
when one of N endpoints leaves only about 1/N of the keys move (those it had)."""
import http.client

from conftest import free_port
from test_retries_mirror import scripted


def config(port, ups, policy="RING_HASH", hash_config=None):
    return {
        "listeners": [{"name": "main", "address": "127.0.0.1", "port": port, "routeConfig": "main"}],
        "routeConfigs": [{"name": "main", "virtualHosts": [{"name": "all", "domains": ["*"], "routes": [
            {"name": "all", "match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]}],
        "clusters": [{"name": "app", "lbPolicy": policy, "consistentHash": hash_config or {"header": "x-user"},
                      "endpoints": [{"address": "127.0.0.1", "port": p} for p in ups]}],
    }


def who(conn, path="/", headers=None):
    """The name of the upstream that answered (scripted upstreams answer "NAME got N")."""
    conn.request("GET", path, headers={"Host": "app", **(headers or {})})
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200, (r.status, body)
    return body.split(b" ")[0].decode(), {k.lower(): v for k, v in r.getheaders()}


def assignments(port, keys):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        return {k: who(conn, headers={"x-user": k})[0] for k in keys}
    finally:
        conn.close()


def check_keys_stay_and_one_nth_moves(mesh, policy):
    ups = [scripted(mesh, f"up{i}") for i in range(4)]
    port = free_port()
    proxy = mesh.proxy(config(port, ups, policy))
    # One value, 100 requests on fresh connections (so over both loops): one endpoint.
    seen = set()
    for _ in range(100):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        seen.add(who(conn, headers={"x-user": "ann"})[0])
        conn.close()
    assert len(seen) == 1, seen

    keys = [f"user-{i}" for i in range(200)]
    before = assignments(port, keys)
    assert len(set(before.values())) == 4, before
    # up2 leaves: its keys move, the others' keys stay.
    proxy.write_config(config(port, [p for i, p in enumerate(ups) if i != 2], policy))
    proxy.wait_version(2)
    after = assignments(port, keys)
    moved = [k for k in keys if before[k] != after[k]]
    assert all(after[k] != "up2" for k in keys)
    share = len(moved) / len(keys)
    print(f"{policy}: {len(moved)} of {len(keys)} keys moved ({share:.0%})")
    return before, after, moved, share


def test_ring_hash_keeps_a_key_on_one_endpoint_and_moves_only_the_leavers_keys(mesh):
    before, after, moved, share = check_keys_stay_and_one_nth_moves(mesh, "RING_HASH")
    assert all(before[k] == "up2" for k in moved), [(k, before[k], after[k]) for k in moved if before[k] != "up2"]
    assert 0.10 <= share <= 0.40, share


def test_maglev_moves_about_one_nth_of_the_keys(mesh):
    _, _, moved, share = check_keys_stay_and_one_nth_moves(mesh, "MAGLEV")
    assert 0.10 <= share <= 0.45, share


def test_cookie_is_generated_with_its_ttl_and_then_keeps_the_client_on_one_endpoint(mesh):
    ups = [scripted(mesh, f"up{i}") for i in range(3)]
    port = free_port()
    mesh.proxy(config(port, ups, hash_config={"cookie": {"name": "affinity", "path": "/", "ttlMs": 30000}}))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    first, headers = who(conn)
    cookie = headers.get("set-cookie", "")
    assert cookie.startswith('affinity="') and "Max-Age=30" in cookie and "Path=/" in cookie and "HttpOnly" in cookie, cookie
    value = cookie.split(";")[0]
    conn.close()
    for _ in range(30):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        name, headers = who(conn, headers={"Cookie": value})
        conn.close()
        assert name == first and "set-cookie" not in headers
