"""Access log lines in Istio's default TEXT format and in JSON (`accessLogEncoding`), parsed field by field."""
import json
import re

from conftest import curl, free_port, simple_config

# Istio's default text format (Envoy's default plus Istio's fields), one group per operator.
ISTIO_TEXT = re.compile(
    r'\[(?P<start_time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\] '
    r'"(?P<method>\S+) (?P<path>\S+) (?P<protocol>\S+)" (?P<response_code>\d+) (?P<response_flags>\S+) '
    r'(?P<response_code_details>\S+) (?P<connection_termination_details>\S+) '
    r'"(?P<upstream_transport_failure_reason>[^"]*)" (?P<bytes_received>\d+) (?P<bytes_sent>\d+) '
    r'(?P<duration>\d+) (?P<upstream_service_time>\S+) "(?P<x_forwarded_for>[^"]*)" "(?P<user_agent>[^"]*)" '
    r'"(?P<request_id>[^"]*)" "(?P<authority>[^"]*)" "(?P<upstream_host>[^"]*)" (?P<upstream_cluster>\S+) '
    r'(?P<upstream_local_address>\S+) (?P<downstream_local_address>\S+) (?P<downstream_remote_address>\S+) '
    r'(?P<requested_server_name>\S+) (?P<route_name>\S+)')


def send(port):
    for args in (["-d", "hello"], []):
        r = curl("-o", "/dev/null", "-w", "%{http_code}", "-H", "x-request-id: log-1", *args,
                 f"http://127.0.0.1:{port}/echo")
        assert r.stdout == b"200"
    r = curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/nothing-here")
    assert r.stdout == b"404"


def pick(entries, code):
    """The POST, GET and 404 entries (each loop flushes its own lines, so order is not kept)."""
    by = {(e["method"], code(e)): e for e in entries}
    return by[("POST", "200")], by[("GET", "200")], by[("GET", "404")]


def config(port, upstream, encoding=None):
    c = simple_config(port, upstream, routes=[{"name": "echo", "match": {"prefix": "/echo"}, "route": {"cluster": "app"}}])
    if encoding:
        c["accessLogEncoding"] = encoding
    return c


def test_text_format_fields(mesh):
    upstream = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(config(port, upstream))
    send(port)
    lines = proxy.access_log(wait_lines=3)
    entries = [ISTIO_TEXT.fullmatch(l) for l in lines]
    assert all(entries), lines
    post, get, missing = pick([e.groupdict() for e in entries], lambda e: e["response_code"])
    assert post["method"] == "POST" and post["path"] == "/echo" and post["protocol"] == "HTTP/1.1"
    assert post["response_code"] == "200" and post["response_flags"] == "-"
    assert post["response_code_details"] == "via_upstream"
    assert post["bytes_received"] == "5" and int(post["bytes_sent"]) > 0
    assert int(post["upstream_service_time"]) <= int(post["duration"]) + 1
    assert post["request_id"] == "log-1" and post["user_agent"].startswith("curl/")
    assert post["authority"] == f"127.0.0.1:{port}" and post["upstream_host"] == f"127.0.0.1:{upstream}"
    assert post["upstream_cluster"] == "app" and post["route_name"] == "echo"
    assert post["downstream_local_address"] == f"127.0.0.1:{port}"
    assert re.fullmatch(r"127\.0\.0\.1:\d+", post["downstream_remote_address"])
    assert get["method"] == "GET"
    assert missing["response_code"] == "404" and missing["response_flags"] == "NR"
    assert missing["upstream_cluster"] == "-" and missing["upstream_host"] == "-" and missing["route_name"] == "-"


def test_json_encoding_fields(mesh):
    upstream = mesh.upstream("app")
    port = free_port()
    proxy = mesh.proxy(config(port, upstream, "JSON"))
    send(port)

    def json_lines():
        return [l for l in proxy.process.stdout().splitlines() if l.startswith("{")]
    from mesh_harness import wait_until
    lines = wait_until(lambda: (lambda l: l if len(l) >= 3 else None)(json_lines()), timeout=10, what="3 JSON lines")
    post, get, missing = pick([json.loads(l) for l in lines], lambda e: str(e["response_code"]))
    assert set(post) == {m for m in ISTIO_TEXT.groupindex}, sorted(post)
    assert post["method"] == "POST" and post["path"] == "/echo" and post["protocol"] == "HTTP/1.1"
    assert post["response_code"] == 200 and post["response_flags"] == "-" and post["bytes_received"] == 5
    assert post["upstream_cluster"] == "app" and post["upstream_host"] == f"127.0.0.1:{upstream}"
    assert post["request_id"] == "log-1" and post["route_name"] == "echo"
    assert isinstance(post["duration"], int) and isinstance(post["upstream_service_time"], int)
    assert post["upstream_local_address"] is None and post["requested_server_name"] is None
    assert missing["response_code"] == 404 and missing["response_flags"] == "NR" and missing["upstream_cluster"] is None
    assert not proxy.access_log(), "no text lines when JSON is chosen"
