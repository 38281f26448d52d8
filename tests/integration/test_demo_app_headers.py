"""The demo app forwards every trace header it receives to the services it calls (Istio's
bookinfo list), so a sidecar after it continues the trace."""
import json
import urllib.request

from conftest import MESHD, free_port, wait_for_port

TRACE_HEADERS = {
    "x-request-id": "4b0c4e5e-54f0-4c0a-9d7b-2a1c7e0f3a11",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "congo=t61rcWkgMzE",
    "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7",
    "x-b3-spanid": "e457b5a2e4d86bd1",
    "x-b3-parentspanid": "05e3ac9a4f6e3b90",
    "x-b3-sampled": "1",
    "x-b3-flags": "1",
    "b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
    "x-ot-span-context": "80f198ee56343ba8;e457b5a2e4d86bd1;05e3ac9a4f6e3b90;cs",
}


def test_every_trace_header_reaches_the_called_service(mesh):
    callee = free_port()
    mesh.start([MESHD, "demo-app", "--port", str(callee), "--name", "reviews"], "reviews")
    caller = free_port()
    mesh.start([MESHD, "demo-app", "--port", str(caller), "--name", "productpage", "--calls", "reviews",
                "--outbound", f"127.0.0.1:{callee}"], "productpage")
    wait_for_port(callee)
    wait_for_port(caller)
    req = urllib.request.Request(f"http://127.0.0.1:{caller}/", headers=TRACE_HEADERS)
    with urllib.request.urlopen(req, timeout=10) as r:
        body = json.loads(r.read())
    seen = body["calls"]["reviews"]["body"]["headers"]
    missing = {k: v for k, v in TRACE_HEADERS.items() if seen.get(k) != v}
    assert not missing, (missing, seen)
