"""Route features the control plane translates into: redirects, per-route header changes,
whole-path rewrites, query parameter and :authority matching, port-qualified domains."""
import json

from conftest import curl, free_port


def config(port, up):
    return {
        "listeners": [{"name": "main", "address": "127.0.0.1", "port": port, "routeConfig": "rc"}],
        "routeConfigs": [{"name": "rc", "virtualHosts": [
            {"name": "reviews-9080", "domains": ["reviews:9080"], "routes": [
                {"name": "port", "match": {"prefix": "/"}, "directResponse": {"status": 200, "body": "port 9080"}}]},
            {"name": "reviews", "domains": ["reviews"], "routes": [
                {"name": "moved", "match": {"path": "/old"},
                 "redirect": {"uri": "/new", "responseCode": 302},
                 "headers": {"response": {"set": {"x-redirected": "yes"}}}},
                {"name": "https", "match": {"prefix": "/secure"}, "redirect": {"scheme": "https"}},
                {"name": "query", "match": {"prefix": "/", "queryParams": [{"name": "user", "exact": "jason lee"}]},
                 "directResponse": {"status": 200, "body": "jason"}},
                {"name": "authority", "match": {"prefix": "/", "headers": [{"name": ":authority", "exact": "reviews:8000"}]},
                 "directResponse": {"status": 200, "body": "authority"}},
                {"name": "item", "match": {"safeRegex": "/item/[0-9]+"},
                 "route": {"cluster": "app", "pathRewrite": "/item"}},
                {"name": "rest", "match": {"prefix": "/"}, "route": {"cluster": "app"},
                 "headers": {"request": {"set": {"x-route": "rest"}, "add": {"x-added": "1"}, "remove": ["x-secret"]},
                             "response": {"set": {"x-served-by": "meshd"}, "remove": ["x-service"]}}},
            ]},
        ]}],
        "clusters": [{"name": "app", "endpoints": [{"address": "127.0.0.1", "port": up}]}],
    }


def test_redirects_rewrites_matchers_and_header_changes(mesh):
    up = mesh.upstream("app")
    port = free_port()
    mesh.proxy(config(port, up))
    base = f"http://127.0.0.1:{port}"

    r = curl("-i", "-H", "Host: reviews", f"{base}/old?a=1").stdout.decode()
    assert r.startswith("HTTP/1.1 302")
    assert "location: http://reviews/new?a=1" in r.lower()
    assert "x-redirected: yes" in r.lower()
    r = curl("-i", "-H", "Host: reviews:8080", f"{base}/secure/x").stdout.decode()
    assert r.startswith("HTTP/1.1 301")
    assert "location: https://reviews/secure/x" in r.lower()

    assert curl("-H", "Host: reviews", f"{base}/x?user=jason%20lee").stdout == b"jason"
    assert curl("-H", "Host: reviews:8000", f"{base}/x").stdout == b"authority"
    assert curl("-H", "Host: reviews:9080", f"{base}/x").stdout == b"port 9080"

    seen = json.loads(curl("-H", "Host: reviews", f"{base}/item/42?full=1").stdout)
    assert seen["path"] == "/item?full=1"

    r = curl("-i", "-H", "Host: reviews", "-H", "x-secret: s", "-H", "x-route: client", f"{base}/plain").stdout.decode()
    head, body = r.split("\r\n\r\n", 1)
    assert "x-served-by: meshd" in head.lower()
    assert "x-service:" not in head.lower()
    h = json.loads(body)["headers"]
    assert h["x-route"] == "rest"
    assert h["x-added"] == "1"
    assert "x-secret" not in h
